"""The live stream behind every dashboard page: server-sent events over one long HTTP response.

Once a second the stream builds its page's snapshot (``snapshots.py``) and sends it only if it differs from
the last one it sent; a quiet page gets a comment line every ``KEEPALIVE_SECONDS`` instead, so a dead
connection is noticed. One open page therefore costs the store exactly one snapshot a second (each page's
round trips are counted in ``snapshots.py``) and costs the network one event per second at most.

How a stream ends:
  * the client goes away: Quart cancels the response, and the generator's ``finally`` runs at once;
  * the server shuts down: the stream sees the hub closed within one tick, says ``bye`` and ends,
    so it never holds up the graceful drain;
  * the queue, job or batch it shows is deleted (or its record expired): it says ``gone`` and ends.
Snapshots are built in a shielded scope, because cancelling an in-flight store command would cost the store
client a pool slot; each command is bounded by the client's own timeout, so the shield is bounded too.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import orjson
import trio

from starq.worker_kit.errors import NotFound, StarqError

TICK_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# How long the browser waits before reconnecting when the stream breaks (the SSE "retry" field).
RECONNECT_MS = 2000


@attrs.define
class StreamCounter:
    """How many live streams are open in this process, and how many events they have sent."""

    open: int = 0
    opened: int = 0
    events: int = 0
    snapshots_built: int = 0


def sse(event: str, data: Any) -> bytes:
    """One server-sent event. JSON never contains a raw newline, so one ``data:`` line always suffices."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def snapshot_events(
    build: Callable[[], Awaitable[dict[str, Any]]],
    *,
    closing: Callable[[], bool],
    counter: StreamCounter,
    tick: float = TICK_SECONDS,
) -> AsyncIterator[bytes]:
    """The event stream of one page: ``snapshot`` events when its data changes, until one of the ends above.

    Args:
        build: makes the page's snapshot (raises a NotFound error when its subject is gone).
        closing: true once the server is shutting down.
        counter: this process's stream statistics, kept up to date.
        tick: seconds between snapshots.
    """
    counter.open += 1
    counter.opened += 1
    try:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        last: bytes | None = None
        quiet = 0.0
        while True:
            if closing():
                counter.events += 1
                yield sse("bye", {"reason": "the server is shutting down"})
                return
            snapshot: dict[str, Any] | None = None
            failure: StarqError | None = None
            with trio.CancelScope(shield=True):
                try:
                    snapshot = await build()
                except StarqError as exc:
                    failure = exc
            counter.snapshots_built += 1
            if isinstance(failure, NotFound):
                counter.events += 1
                yield sse("gone", {"detail": failure.detail})
                return
            if failure is not None:
                # The store is unreachable or busy: say so, and keep trying on the next tick.
                counter.events += 1
                yield sse("trouble", {"detail": failure.detail, "error": failure.code})
                last = None
            else:
                body = orjson.dumps(snapshot)
                if body != last:
                    last = body
                    quiet = 0.0
                    counter.events += 1
                    # "now" lets the page show ages in the server's clock without another event every second.
                    yield b'event: snapshot\ndata: {"now":' + orjson.dumps(time.time()) + b',"data":' + body + b"}\n\n"
                else:
                    quiet += tick
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        yield b": keepalive\n\n"
            await trio.sleep(tick)
    finally:
        counter.open -= 1
