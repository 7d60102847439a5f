"""The queue page's recent events: the queue's event log (its ``events`` setting on) as a live stream.

It follows the log through the hub's event feeds (``server/event_feeds.py``), as the API's ``GET …/events``
does, so every reader of a queue in this process, dashboard or API, shares one read of the log per change. The
dashboard serves it itself rather than sending the browser to the API's stream because:
  * it starts with the last RECENT events, so the panel is not empty on load (the API's starts from now, or
    replays the whole log, up to ``events_max`` events);
  * it ends the way the page's other stream does: ``bye`` when the server shuts down, ``gone`` when the queue
    is deleted, ``trouble`` when the store cannot be read (the page then reconnects after the last event it
    has, with ``Last-Event-ID``);
  * it is counted with the dashboard's streams (``GET /dashboard/streams``).
Its reads need a key only under read auth, as the dashboard's other reads do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import trio

from starq.server.engine.engine import Engine
from starq.server.event_feeds import Dropped, EventFeeds
from starq.worker_kit.errors import QueueNotFound, StarqError

from .live import KEEPALIVE_SECONDS, RECONNECT_MS, StreamCounter, sse

# How many of the log's latest events a newly opened panel starts with (it keeps this many on screen too).
RECENT = 50


async def event_log(
    engine: Engine, feeds: EventFeeds, queue: str, after: int | None, *, counter: StreamCounter
) -> AsyncIterator[bytes]:
    """The queue's events after event number ``after`` (None: its last RECENT events), then as they happen:
    ``event: job`` with the event's number as its ``id`` and the API's JSON of it as its data; ``dropped``
    when events the reader never saw left the log first; ``bye``, ``gone`` or ``trouble`` as it ends."""
    counter.open += 1
    counter.opened += 1
    try:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        try:
            if after is None:
                with trio.CancelScope(shield=True):  # a cancelled store command would cost a pool slot
                    bounds = await engine.read_events(queue)
                after = max(bounds.first - 1, bounds.last - RECENT, 0)
            async for item in feeds.follow(queue, after, KEEPALIVE_SECONDS):
                if item is None:
                    yield b": keepalive\n\n"
                    continue
                counter.events += 1
                if isinstance(item, Dropped):
                    yield sse("dropped", {"after": item.after, "oldest": item.oldest})
                else:
                    yield b"id: %d\nevent: job\ndata: %s\n\n" % (item.number, orjson.dumps(item.to_json(queue)))
        except QueueNotFound as exc:
            counter.events += 1
            yield sse("gone", {"detail": exc.detail})
            return
        except StarqError as exc:
            counter.events += 1
            yield sse("trouble", {"detail": exc.detail, "error": exc.code})
            return
        # The feeds end every stream when the server shuts down.
        counter.events += 1
        yield sse("bye", {"reason": "the server is shutting down"})
    finally:
        counter.open -= 1
