"""The wire helpers of the serving-path tests: a server in the test's process, raw HTTP/1.1 requests, and a
reader of responses byte for byte."""

from __future__ import annotations

import json

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

LIMIT = 5.0  # no single wait in these tests may take longer than this


def serving_config() -> Config:
    """A Hypercorn config for a server in the test's process: port 0 on loopback, no access log, and keep-alive
    limits that never end a test by themselves (tests that test them lower them)."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.keep_alive_timeout = 30
    config.keep_alive_max_requests = 1000
    return config


async def start_serving(nursery, app, config: Config, stop: trio.Event) -> tuple[str, int]:
    """Serves ``app`` with Hypercorn's trio worker in ``nursery`` until ``stop`` is set; returns (host, port).
    The config is read per connection, so a test may still change timeouts once the server runs."""

    async def run(task_status=trio.TASK_STATUS_IGNORED):
        await serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)

    binds = await nursery.start(run)
    host, port = binds[0].rsplit("//", 1)[1].rsplit(":", 1)
    return host, int(port)


async def connect(served) -> trio.SocketStream:
    return await trio.open_tcp_stream(served["host"], served["port"])


def request_bytes(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}"
    if body and "transfer-encoding" not in headers.lower():
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class Reader:
    """Reads responses framed by Content-Length (or chunked) from one stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def _more(self) -> bool:
        with trio.fail_after(LIMIT):
            data = await self.stream.receive_some(65536)
        self.buffer += data
        return bool(data)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            assert await self._more(), "connection closed before a response"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buffer) < n:
                assert await self._more()
            body, self.buffer = self.buffer[:n], self.buffer[n:]
            return status, headers, body
        body = b""
        while True:  # chunked
            while b"\r\n" not in self.buffer:
                assert await self._more()
            size_line, rest = self.buffer.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(rest) < size + 2:
                assert await self._more()
                size_line, rest = self.buffer.split(b"\r\n", 1)
            body += rest[:size]
            self.buffer = rest[size + 2 :]
            if size == 0:
                return status, headers, body

    async def closed(self) -> bool:
        """True when the server closes the connection (EOF or reset) within LIMIT seconds."""
        try:
            with trio.fail_after(LIMIT):
                while True:
                    data = await self.stream.receive_some(65536)
                    if not data:
                        return True
        except trio.BrokenResourceError:
            return True
        except trio.TooSlowError:
            return False


async def exchange(served, raw: bytes) -> bytes:
    """Sends ``raw``, returns everything until the server closes the connection."""
    stream = await connect(served)
    await stream.send_all(raw)
    data = b""
    with trio.fail_after(LIMIT):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            data += chunk
    await stream.aclose()
    return data


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def json_body(raw: bytes) -> dict:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])
