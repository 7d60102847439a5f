"""HTTP/1.1 behaviours both of Starq's serving paths must have, tested over real sockets, and the wire helpers
their tests share.

The tests here are collected by ``test_http1.py`` (Starq's own path, ``starq.server.http1``) and by
``test_http_layer.py`` (Hypercorn's path with ``starq.server.hypercorn_fixes``): each module imports them and
runs them with its own ``served`` fixture, a dict with ``host``, ``port``, ``events`` (what the app saw) and the
Hypercorn ``config``.
"""

from __future__ import annotations

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

LIMIT = 5.0  # no single wait in these tests may take longer than this

__all__ = [
    "test_chunked_request_body",
    "test_client_connection_close_is_answered_then_closed",
    "test_client_disconnect_cancels_a_long_poll_handler",
    "test_idle_connection_is_closed_after_keep_alive_timeout",
    "test_keep_alive_max_requests_closes_the_connection",
    "test_keep_alive_serves_many_requests_on_one_connection",
    "test_large_request_and_response_bodies",
    "test_pipelined_requests_are_answered_in_order",
    "test_request_longer_than_keep_alive_timeout_is_not_cut",
    "test_streamed_response_leaves_chunk_by_chunk",
]


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


async def test_keep_alive_serves_many_requests_on_one_connection(served):
    stream = await connect(served)
    reader = Reader(stream)
    for _ in range(5):
        await stream.send_all(request_bytes("GET", "/ping"))
        status, headers, body = await reader.response()
        assert (status, body) == (200, b'{"ok":true}')
        assert headers.get("connection") != "close" and "date" in headers
    await stream.aclose()


async def test_client_connection_close_is_answered_then_closed(served):
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping", headers="Connection: close\r\n"))
    status, headers, body = await reader.response()
    assert (status, body, headers["connection"]) == (200, b'{"ok":true}', "close")
    assert await reader.closed()


async def test_keep_alive_max_requests_closes_the_connection(served):
    served["config"].keep_alive_max_requests = 2
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    assert (await reader.response())[1].get("connection") != "close"
    await stream.send_all(request_bytes("GET", "/ping"))
    status, headers, _ = await reader.response()
    assert status == 200 and headers.get("connection") == "close"
    assert await reader.closed()


async def test_idle_connection_is_closed_after_keep_alive_timeout(served):
    served["config"].keep_alive_timeout = 0.3
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    await reader.response()
    started = trio.current_time()
    assert await reader.closed()
    assert trio.current_time() - started >= 0.25


async def test_request_longer_than_keep_alive_timeout_is_not_cut(served):
    # The idle deadline passes while the request is in flight: the connection must stay, and then time out
    # again only once it has been idle for the whole timeout.
    served["config"].keep_alive_timeout = 0.2
    stream = await connect(served)
    reader = Reader(stream)
    for _ in range(2):
        await stream.send_all(request_bytes("GET", "/slow?s=0.5"))
        assert (await reader.response())[::2] == (200, b"slow")
    assert await reader.closed()


async def test_client_disconnect_cancels_a_long_poll_handler(served):
    events = served["events"]
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    await reader.response()
    await stream.send_all(request_bytes("GET", "/hold"))
    with trio.fail_after(LIMIT):
        while "hold:start" not in events:
            await trio.sleep(0.01)
    await stream.aclose()
    with trio.fail_after(LIMIT):
        while "hold:cancelled" not in events:
            await trio.sleep(0.01)


async def test_pipelined_requests_are_answered_in_order(served):
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(
        request_bytes("GET", "/big?n=3")
        + request_bytes("POST", "/echo-length", b"abcde")
        + request_bytes("GET", "/slow?s=0.1")
        + request_bytes("GET", "/ping")
    )
    assert (await reader.response())[2] == b"xxx"
    assert (await reader.response())[2] == b"5"
    assert (await reader.response())[2] == b"slow"
    assert (await reader.response())[2] == b'{"ok":true}'


async def test_large_request_and_response_bodies(served):
    stream = await connect(served)
    reader = Reader(stream)
    body = b"y" * (5 * 1024 * 1024)
    await stream.send_all(request_bytes("POST", "/echo-length", body))
    assert (await reader.response())[2] == str(len(body)).encode()
    await stream.send_all(request_bytes("GET", f"/big?n={3 * 1024 * 1024}"))
    status, _, got = await reader.response()
    assert status == 200 and len(got) == 3 * 1024 * 1024 and set(got) == {ord("x")}


async def test_chunked_request_body(served):
    stream = await connect(served)
    reader = Reader(stream)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"hello", b" ", b"world" * 1000)) + b"0\r\n\r\n"
    await stream.send_all(request_bytes("POST", "/echo-length", chunks, headers="Transfer-Encoding: chunked\r\n"))
    assert (await reader.response())[2] == str(len(b"hello world" + b"world" * 999)).encode()


async def test_streamed_response_leaves_chunk_by_chunk(served):
    # A streamed body is not buffered to its end: each chunk leaves as the app sends it.
    stream = await connect(served)
    await stream.send_all(request_bytes("GET", "/stream"))
    seen = b""
    with trio.fail_after(0.4):  # before the handler's 0.5 s pause ends
        while b"first;" not in seen:
            seen += await stream.receive_some(65536)
    assert seen.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in seen.lower()
    reader = Reader(stream)
    reader.buffer = seen
    assert (await reader.response())[2] == b"first;second;"
    await stream.send_all(request_bytes("GET", "/ping"))  # the connection goes on after a chunked body
    assert (await reader.response())[2] == b'{"ok":true}'
