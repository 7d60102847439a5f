"""A lean HTTP/1.1 client over trio sockets, so the load generator is not what limits a benchmark.

It speaks only what the benchmarks need: keep-alive requests with a ``Content-Length`` body and responses
framed by ``Content-Length`` (which is what Starq's server sends). One request costs one ``send_all`` and
usually one ``receive_some``: a few microseconds of Python, against hundreds in a general client.
"""

from __future__ import annotations

import socket

import trio

RECV_SIZE = 65536
# A response head larger than this is a bug in the server or in this client, not something to wait for.
MAX_HEAD = 65536


class ResponseError(Exception):
    """The server's reply was not a response this client understands, or the connection closed mid-reply."""


class HTTPConnection:
    """One keep-alive connection. Not safe for concurrent requests: give each task its own."""

    def __init__(self, stream: trio.SocketStream, host: str, api_key: str, address: tuple[str, int]) -> None:
        self._stream = stream
        self._address = address
        self._buffer = bytearray()
        # The server said ``Connection: close`` (e.g. after its keep-alive request limit): reconnect first.
        self._must_reconnect = False
        self.reconnects = 0
        self._prefix_host = f"Host: {host}\r\nX-API-Key: {api_key}\r\n".encode()

    @classmethod
    async def open(cls, host: str, port: int, api_key: str = "dev-key") -> HTTPConnection:
        stream = await trio.open_tcp_stream(host, port)
        return cls(stream, f"{host}:{port}", api_key, (host, port))

    @classmethod
    async def connect(cls, host: str, port: int, api_key: str = "dev-key") -> HTTPConnection:
        """Like ``open``, for an IPv4 address only, without ``trio.open_tcp_stream``'s name resolution and
        happy-eyeballs nursery: a third of the load generator's CPU when it opens 10,000 connections."""
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            await sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(trio.SocketStream(sock), f"{host}:{port}", api_key, (host, port))

    async def aclose(self) -> None:
        await self._stream.aclose()

    @classmethod
    def encode_for(
        cls, host: str, port: int, method: str, path: str, body: bytes = b"", api_key: str = "dev-key"
    ) -> bytes:
        """The bytes of one request, for sending the same request on many connections."""
        return cls(None, f"{host}:{port}", api_key, (host, port)).encode(method, path, body)  # type: ignore[arg-type]

    async def send_raw(self, data: bytes) -> None:
        """Writes request bytes made by ``encode`` (pipelining, or a request sent before reading anything)."""
        await self._stream.send_all(data)

    def encode(self, method: str, path: str, body: bytes = b"") -> bytes:
        """The bytes of one request (exposed so pipelining tests can send several at once)."""
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._prefix_host
        if body or method in ("POST", "PUT", "PATCH"):
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        return head + b"\r\n" + body

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Sends one request and returns ``(status, body)``."""
        if self._must_reconnect:
            await self._stream.aclose()
            self._stream = await trio.open_tcp_stream(*self._address)
            self._buffer.clear()
            self._must_reconnect = False
            self.reconnects += 1
        await self._stream.send_all(self.encode(method, path, body))
        return await self.read_response()

    async def read_response(self) -> tuple[int, bytes]:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise ResponseError("response head too large")
            await self._fill()
        head = bytes(buffer[:end]).lower()
        if not head.startswith(b"http/1.1 "):
            raise ResponseError(f"not an HTTP/1.1 response: {head[:40]!r}")
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            if status in (204, 304) or 100 <= status < 200:
                length = 0
            else:
                raise ResponseError("response without content-length")
        else:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        if b"\r\nconnection: close" in head:
            self._must_reconnect = True
        start = end + 4
        while len(buffer) < start + length:
            await self._fill()
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        return status, body

    async def _fill(self) -> None:
        data = await self._stream.receive_some(RECV_SIZE)
        if not data:
            raise ResponseError("connection closed by the server")
        self._buffer += data
