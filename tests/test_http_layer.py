"""Starq's changes to Hypercorn's trio worker (``starq.server.hypercorn_fixes``), tested over real sockets.

Each test serves a small QuartTrio app with Hypercorn in this process (port 0, ``nursery.start``) and talks to
it with raw HTTP/1.1 so that framing, keep-alive and connection closes are visible byte for byte.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
import trio

# The behaviours every serving path must have, run here on Hypercorn's path with this module's ``served``.
from http_behaviours import *  # noqa: F403
from http_behaviours import Reader, connect, request_bytes, serving_config, start_serving
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import tcp_server
from quart import Response, request
from quart_trio import QuartTrio

from starq.server import hypercorn_fixes
from starq.server.hypercorn_fixes import StarqTCPServer


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
    config = serving_config()
    stop = trio.Event()
    host, port = await start_serving(nursery, make_app(events), config, stop)
    yield {"host": host, "port": port, "events": events, "config": config}
    stop.set()


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
