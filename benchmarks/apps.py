"""Reference servers: ``python -m benchmarks.apps KIND`` serves on a free loopback port and prints ``PORT n``.

Kinds:
  ``trivial``    a raw trio socket server answering every request head with a fixed response (no HTTP parsing
                 beyond finding the blank line): the ceiling of the load generator itself.
  ``ceiling``    a do-nothing JSON endpoint on Starq's own serving stack, exactly as ``starq serve`` runs it by
                 default (QuartTrio in Hypercorn's trio worker, connections served by ``starq.server.http1``,
                 the same config).
  ``stock``      the same app on stock Hypercorn-trio (its own HTTP/1.1 code): what the others are measured against.
  ``bare``       a bare ASGI app on stock Hypercorn-trio (the stack notes' "bare ASGI" figure).
  ``bare-http1`` the bare ASGI app on ``starq.server.http1``: the serving path's own cost without QuartTrio.

The endpoint lives here, not in the product: ``GET /noop`` returns ``{}``.
"""

from __future__ import annotations

import socket
import sys

import orjson
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


def noop_app():
    from quart import Response
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.get("/noop")
    async def noop() -> Response:
        return Response(orjson.dumps({}), content_type="application/json")

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
    # Announced only now: importing the stack takes seconds on a busy machine, and must not count as load.
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()
