"""Starq's changes to Hypercorn's trio worker (``starq.server.hypercorn_fixes``), tested over real sockets.

Each test serves a small QuartTrio app with Hypercorn in this process (port 0, ``nursery.start``) and talks to
it with raw HTTP/1.1 so that framing, keep-alive and connection closes are visible byte for byte.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
import trio
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import serve, tcp_server
from quart import Response, request
from quart_trio import QuartTrio

from starq.server import hypercorn_fixes
from starq.server.hypercorn_fixes import StarqTCPServer

LIMIT = 5.0  # no single wait in these tests may take longer than this


def make_app(events: list[str]) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b'{"ok":true}', content_type="application/json")

    @app.get("/slow")
    async def slow() -> Response:
        await trio.sleep(float(request.args.get("s", "0.5")))
        return Response(b"slow", content_type="text/plain")

    @app.post("/echo-length")
    async def echo_length() -> Response:
        body = await request.get_data()
        return Response(str(len(body)).encode(), content_type="text/plain")

    @app.get("/big")
    async def big() -> Response:
        return Response(b"x" * int(request.args["n"]), content_type="application/octet-stream")

    @app.get("/hold")
    async def hold() -> Response:
        events.append("hold:start")
        try:
            await trio.sleep_forever()
        finally:
            events.append("hold:cancelled")

    @app.get("/stream")
    async def stream() -> Response:
        async def chunks():
            yield b"first;"
            await trio.sleep(0.5)
            yield b"second;"

        return Response(chunks(), content_type="text/plain")

    return app


@pytest.fixture
def speedups(monkeypatch):
    """Installs the opt-in speed-ups for one test only (they patch Hypercorn process-wide)."""
    monkeypatch.setattr(H11Protocol, "_send_h11_event", H11Protocol._send_h11_event)
    monkeypatch.setattr(hypercorn_run, "TCPServer", hypercorn_run.TCPServer)
    hypercorn_fixes.install(speedups=True)


@pytest.fixture
async def served(nursery, speedups):
    """Serves ``make_app`` with Starq's fixes; yields (host, port, events, config)."""
    events: list[str] = []
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.keep_alive_timeout = 30
    config.keep_alive_max_requests = 1000
    stop = trio.Event()
    yield_value = {}

    async def start(task_status=trio.TASK_STATUS_IGNORED):
        await serve(make_app(events), config, shutdown_trigger=stop.wait, task_status=task_status)

    # The config is read per connection, so tests may still change timeouts after the server started.
    binds = await nursery.start(start)
    host, port = binds[0].rsplit("//", 1)[1].rsplit(":", 1)
    yield_value.update(host=host, port=int(port), events=events, config=config)
    yield yield_value
    stop.set()


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
            self.buffer = rest[size + 2:]
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
        assert headers.get("connection") != "close"
    await stream.aclose()


async def test_client_connection_close_is_answered_then_closed(served):
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping", headers="Connection: close\r\n"))
    status, headers, body = await reader.response()
    assert (status, body) == (200, b'{"ok":true}')
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
    assert trio.current_time() - started >= 0.25  # not before the timeout


async def test_request_longer_than_keep_alive_timeout_is_not_cut(served):
    # The idle deadline passes while the request is in flight: the connection must stay, and then time out
    # again only once it has been idle for the whole timeout.
    served["config"].keep_alive_timeout = 0.2
    stream = await connect(served)
    reader = Reader(stream)
    for _ in range(2):
        await stream.send_all(request_bytes("GET", "/slow?s=0.5"))
        status, _, body = await reader.response()
        assert (status, body) == (200, b"slow")
    assert await reader.closed()


async def test_client_disconnect_cancels_a_long_poll_handler(served):
    events = served["events"]
    stream = await connect(served)
    reader = Reader(stream)
    # A request first, so the handler runs on a recycled keep-alive connection (the idle timer has cycled).
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
    await stream.send_all(request_bytes("GET", "/big?n=3") + request_bytes("POST", "/echo-length", b"abcde")
                          + request_bytes("GET", "/ping"))
    assert (await reader.response())[2] == b"xxx"
    assert (await reader.response())[2] == b"5"
    assert (await reader.response())[2] == b'{"ok":true}'


async def test_large_request_and_response_bodies(served):
    stream = await connect(served)
    reader = Reader(stream)
    body = b"y" * (5 * 1024 * 1024)
    await stream.send_all(request_bytes("POST", "/echo-length", body))
    assert (await reader.response())[2] == str(len(body)).encode()
    await stream.send_all(request_bytes("GET", f"/big?n={3 * 1024 * 1024}"))
    status, headers, got = await reader.response()
    assert status == 200 and len(got) == 3 * 1024 * 1024 and set(got) == {ord("x")}


async def test_chunked_request_body(served):
    stream = await connect(served)
    reader = Reader(stream)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"hello", b" ", b"world" * 1000)) + b"0\r\n\r\n"
    await stream.send_all(request_bytes("POST", "/echo-length", chunks, headers="Transfer-Encoding: chunked\r\n"))
    assert (await reader.response())[2] == str(len(b"hello world" + b"world" * 999)).encode()


async def test_streamed_response_leaves_chunk_by_chunk(served):
    # The head is held only until the first body bytes: a streamed body is not buffered to its end.
    stream = await connect(served)
    await stream.send_all(request_bytes("GET", "/stream"))
    seen = b""
    with trio.fail_after(0.4):  # before the handler's 0.5 s pause ends
        while b"first;" not in seen:
            seen += await stream.receive_some(65536)
    assert seen.startswith(b"HTTP/1.1 200")
    reader = Reader(stream)
    reader.buffer = seen
    status, headers, body = await reader.response()
    assert body == b"first;second;"


async def test_a_response_leaves_in_one_write(served, monkeypatch):
    writes: list[bytes] = []
    original = StarqTCPServer.protocol_send

    async def counting(self, event):
        if isinstance(event, RawData):
            writes.append(event.data)
        await original(self, event)

    monkeypatch.setattr(StarqTCPServer, "protocol_send", counting)
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    await reader.response()
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(b'{"ok":true}')


async def test_a_closed_idle_connection_ends_its_task_promptly(served, monkeypatch):
    # Stock Hypercorn kept a connection's task (and its memory) until the keep-alive timeout after the client
    # had already gone; here it ends at once.
    active = {"n": 0}
    original = StarqTCPServer.run

    async def counted(self):
        active["n"] += 1
        try:
            await original(self)
        finally:
            active["n"] -= 1

    monkeypatch.setattr(StarqTCPServer, "run", counted)
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    await reader.response()
    assert active["n"] == 1
    await stream.aclose()
    with trio.fail_after(2):  # the keep-alive timeout is 30 s
        while active["n"]:
            await trio.sleep(0.01)


def test_install_is_pinned_and_idempotent(speedups):
    hypercorn_fixes.install(speedups=True)

    assert hypercorn_run.TCPServer is StarqTCPServer
    assert getattr(tcp_server.TCPServer.protocol_send, hypercorn_fixes._MARK)
    # Upgrading Hypercorn turns the speed-ups off (with a warning): re-check them against the new version.
    assert version("hypercorn").startswith(hypercorn_fixes.PINNED)
