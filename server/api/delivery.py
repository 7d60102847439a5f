"""Making claims cancel-safe up to the socket.

``DeliveryGuard`` wraps the ASGI app. It gives each request a ``Ledger`` (in the ASGI scope) into which the
claim handler records the jobs it obtained, and watches the app's ``send``: once the response body has been
handed to the server with no disconnect known before it, the jobs count as delivered. If the request ends any other way (the client hung
up mid long-poll, the response could not be sent, the server is shutting down) the guard returns the
undelivered jobs to the queue at once, in a shielded scope, instead of leaving them to ``claim_timeout``.
"""

from __future__ import annotations

import trio
from quart import request

from ..claims import Ledger

SCOPE_KEY = "starq.ledger"


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

        async def guarded_send(message) -> None:
            if ledger.jobs and message["type"] == "http.response.body" and message.get("body"):
                # Before the jobs are written out, let a disconnect that Hypercorn has already read reach this
                # request: it arrives as a cancellation once the request's message task has run, which two
                # scheduler passes allow. A cancellation here means the client is gone and the jobs go back.
                # The check must come before the write, never after it: a client that reads its answer and
                # closes at once (curl, requests without a session) must keep the jobs it got.
                await trio.sleep(0)
                await trio.sleep(0)
                await send(message)
                ledger.delivered()
            else:
                await send(message)

        try:
            await self._app(scope, receive, guarded_send)
        finally:
            await ledger.release_undelivered(self._engine_of())
