"""Reference servers: ``python -m benchmarks.apps KIND`` serves on a free loopback port and prints ``PORT n``.

Kinds:
  ``trivial``    a raw trio socket server answering every request head with a fixed response (no HTTP parsing
                 beyond finding the blank line): the ceiling of the load generator itself.
  ``ceiling``    a do-nothing API operation served exactly as ``starq serve`` serves its API: one operation
                 declared like the product's (``Operation``), answered by ``ApiService`` (routing, auth, request
                 id, metrics, security headers, the JSON answer) in front of a Quart-Trio app as
                 ``server/app.py`` builds it, in Hypercorn's trio worker with connections served by
                 ``starq.server.http1`` (``hypercorn_config``, the product's own config), the garbage collector
                 tuned as ``serve()`` tunes it. What an API request costs before its handler does any work.
  ``stock``      the same app on stock Hypercorn-trio (its own HTTP/1.1 code), for reference.
  ``bare``       a bare ASGI app on stock Hypercorn-trio.
  ``bare-http1`` the bare ASGI app on ``starq.server.http1``: the serving path's own cost without ``ApiService``.

The operation lives here, not in the product: ``GET /api/noop`` returns ``{}``.
"""

from __future__ import annotations

import socket
import sys
from typing import Any, cast

import trio

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def serve_trivial(listener: socket.socket) -> None:
    async def handle(stream: trio.SocketStream) -> None:
        pending = b""
        try:
            while data := await stream.receive_some(65536):
                pending += data
                n = pending.count(b"\r\n\r\n")
                if n:
                    pending = pending[pending.rfind(b"\r\n\r\n") + 4 :]
                    await stream.send_all(RESPONSE * n)
        except trio.BrokenResourceError:
            pass

    sock = trio.socket.from_stdlib_socket(listener)
    await trio.serve_listeners(handle, [trio.SocketListener(sock)])


NOOP_PATH = "/api/noop"


def noop_app() -> Any:
    """``GET /api/noop`` → ``{}``: one declared operation on Starq's API path, built as ``create_app`` builds the
    product's app (without an engine or a hub: the operation touches neither)."""
    from quart_trio import QuartTrio

    from starq.server.api.operations import Answer, AppState, Operation, Request
    from starq.server.api.service import ApiService
    from starq.server.metrics import Metrics
    from starq.server.settings import Settings

    async def noop(st: AppState, req: Request) -> Answer:
        return {}, 200

    operation = Operation("GET", NOOP_PATH, noop, "Does nothing", "bench", responses={200: None})
    state = AppState(engine=cast(Any, None), hub=cast(Any, None), settings=Settings(), metrics=Metrics())
    app = QuartTrio(__name__)
    app.asgi_app = ApiService(state, app.asgi_app, [operation])  # type: ignore[method-assign,assignment]
    return app


async def bare_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def main() -> None:
    kind = sys.argv[1]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    if kind == "trivial":
        print(f"PORT {listener.getsockname()[1]}", flush=True)
        trio.run(serve_trivial, listener)
        return
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from starq.server import gc_tuning
    from starq.server.serve import hypercorn_config
    from starq.server.settings import Settings

    app = bare_app if kind.startswith("bare") else noop_app()
    if kind in ("stock", "bare"):
        config = Config()
        config.bind = [f"fd://{listener.fileno()}"]
        config.backlog = 4096
        config.accesslog = None
    else:
        config = hypercorn_config(Settings(), listener.fileno())
    if kind in ("ceiling", "stock"):
        gc_tuning.tune_for_serving()  # as serve() does once the app is built (both, so only the HTTP code differs)
    # Announced only now: importing the stack takes seconds on a busy machine, and must not count as load.
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()
