"""The small apps the serving-path tests serve: a QuartTrio app with every kind of endpoint they need, and a bare
ASGI app that reports what the connection told it."""

from __future__ import annotations

import trio
from quart import Response, request
from quart_trio import QuartTrio

from serving.wire import LIMIT
from starq.server import http1


def make_app(events: list[str]) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b'{"ok":true}', content_type="application/json")

    @app.get("/slow")
    async def slow() -> Response:
        events.append("slow:start")
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

    @app.get("/stream-on-cue")
    async def stream_on_cue() -> Response:
        # The second chunk waits until the client has had the first ("stream:go"): a body buffered to its end
        # would never get there (the wait gives up after LIMIT, by when the test has failed).
        async def chunks():
            yield b"first;"
            with trio.move_on_after(LIMIT):
                while "stream:go" not in events:
                    await trio.sleep(0.01)
            yield b"second;"

        return Response(chunks(), content_type="text/plain")

    return app


def make_app_with_failures(events: list[str]) -> QuartTrio:
    app = make_app(events)

    @app.get("/fail")
    async def fail() -> Response:
        raise RuntimeError("boom")

    @app.get("/cut")
    async def cut() -> Response:
        async def chunks():
            yield b"part;"
            raise RuntimeError("cut short")

        return Response(chunks(), content_type="text/plain")

    return app


REACHED: list[bool] = []
# What send_within() returned on /within, and how long it took.
WITHIN: list[tuple[bool, float]] = []
WITHIN_SECONDS = 0.3
# What /gone's first look at client_gone() saw, once it has looked (the test waits for it before it half-closes).
GONE_BEFORE: list[bool] = []


async def raw_app(scope, receive, send) -> None:
    """A bare ASGI app that never calls ``receive``: ``/gone`` waits for ``client_gone()`` and says what it saw;
    any other path answers with what ``send`` returned for its first body bytes."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"].startswith("/header/"):
        # A header made of the path's (percent-decoded) text: /header/x-a:%0d%0aevil sends "x-a" with a CR LF.
        name, _, value = scope["path"].removeprefix("/header/").partition(":")
        headers = [(b"content-type", b"text/plain"), (name.encode("latin-1"), value.encode("latin-1"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/gone":
        client_gone = scope["extensions"][http1.EXTENSION]["client_gone"]
        before = client_gone()
        GONE_BEFORE.append(before)
        with trio.move_on_after(LIMIT):
            while not client_gone():
                await trio.sleep(0.01)
        await send(
            {
                "type": "http.response.body",
                "body": b"before=%s after=%s" % (str(before).encode(), str(client_gone()).encode()),
            }
        )
        return
    if scope["path"] == "/reach":
        # What reached_client() says after the answer was written; kept where the test can read it.
        await send({"type": "http.response.body", "body": b"answer"})
        REACHED.append(await scope["extensions"][http1.EXTENSION]["reached_client"](LIMIT))
        return
    if scope["path"] == "/within":
        # A body far larger than the socket buffers, written under a bound of WITHIN_SECONDS.
        started = trio.current_time()
        body = {"type": "http.response.body", "body": b"x" * (64 << 20)}
        written = await scope["extensions"][http1.EXTENSION]["send_within"](body, WITHIN_SECONDS)
        WITHIN.append((written, trio.current_time() - started))
        return
    sent = await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await send({"type": "http.response.body", "body": b"|sent=%s" % str(sent).encode()})
