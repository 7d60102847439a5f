"""Making claims cancel-safe up to the socket.

``DeliveryGuard`` wraps the ASGI app. It gives each request a ``Ledger`` (in the ASGI scope) into which the
claim handler records the jobs it obtained, and watches the app's ``send``. The jobs count as delivered once
the response body carrying them has been handed to the kernel for a client that had not hung up. If the request
ends any other way (the client hung up mid long-poll, the response could not be written, the server is shutting
down) the guard returns the undelivered jobs to the queue at once, in a shielded scope, instead of leaving them
to ``claim_timeout``.

On Starq's own serving path (``server/http1``) the guard knows: the scope's ``"starq.http1"`` extension says
whether the client has already closed or reset the connection (read or not yet read), and ``send`` returns
whether the bytes reached the kernel. Once the app is done, ``reached_client`` tells a client that reset the
connection without reading them (an HTTP client whose timeout fired just as they came) from one that took
them. On another server (Hypercorn's own protocol code) it can only give a
disconnect that the server has already read two scheduler passes to arrive as a cancellation before the write.
Either way the check comes before the write, never after it: a client that reads its answer and closes at once
(curl, requests without a session) must keep the jobs it got.
"""

from __future__ import annotations

import trio
import trio.lowlevel
from quart import request

from ..claims import Ledger

SCOPE_KEY = "starq.ledger"
# The scope["extensions"] entry of Starq's serving path (server.http1.EXTENSION; not imported, so the guard
# works on any server).
TRANSPORT = "starq.http1"
# How long after writing a claim's jobs a client still counts as possibly hanging up on them (a reset in this
# time sends them back). The wait ends at once when the client sends its next request or closes; only the
# request's task waits, never the client.
CONFIRM_SECONDS = 0.25


def ledger_for_request() -> Ledger:
    """The current request's ledger (a fresh, unguarded one when the app runs without the guard)."""
    ledger = request.scope.get(SCOPE_KEY)
    if ledger is None:
        ledger = request.scope[SCOPE_KEY] = Ledger()
    return ledger


class DeliveryGuard:
    def __init__(self, app, engine_of) -> None:
        self._app = app
        self._engine_of = engine_of

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        ledger = Ledger()
        scope[SCOPE_KEY] = ledger
        transport = scope.get("extensions", {}).get(TRANSPORT)
        unsent = False  # the client was gone before a claim's body was written: send nothing more
        written = False  # a claim's body reached the kernel: whether it reached the client is settled at the end

        async def guarded_send(message) -> None:
            nonlocal unsent, written
            if unsent:
                return
            if ledger.jobs and message["type"] == "http.response.body" and message.get("body"):
                if transport is not None:
                    if transport["client_gone"]():
                        unsent = True  # the jobs go back when the request ends
                        return
                    written = await send(message) or written
                    return
                # Without the transport's word: a disconnect Hypercorn has already read arrives as a cancellation
                # once the request's message task has run, which two scheduler passes allow.
                await trio.lowlevel.checkpoint()
                await trio.lowlevel.checkpoint()
                await send(message)
                ledger.delivered()
            else:
                await send(message)

        try:
            await self._app(scope, receive, guarded_send)
        finally:
            if written and ledger.jobs:
                # The app is done, so nothing else reads the socket: a client that resets the connection now
                # closed without reading the jobs (it timed out just as they came); one that reads, sends on or
                # closes cleanly has them.
                with trio.CancelScope(shield=True):
                    if await transport["reached_client"](CONFIRM_SECONDS):
                        ledger.delivered()
            await ledger.release_undelivered(self._engine_of())
