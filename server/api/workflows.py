"""Workflow operations: progress reports, batches, and a queue's event stream (server-sent events).

Dependencies and batches are submitted through ``jobs.submit``; waiting for a job's outcome is ``jobs.get_job``
with ``wait_ms``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson

from starq.worker_kit.errors import StarqError, ValidationFailed
from starq.worker_kit.protocol import MAX_PROGRESS_BYTES

from ..event_feeds import Dropped
from . import shapes
from .jobs import JOB, encode_json
from .operations import Answer, AppState, Request, Stream, operation

TAG = "workflows"
Q = "/api/v1/queues/{name}"


@operation("PUT", JOB + "/progress", summary="Report how far a claimed job got", tag=TAG, body=shapes.Progress,
           responses={200: shapes.Outcome, 409: shapes.Error, 413: shapes.Error})  # fmt: skip
async def progress(st: AppState, req: Request) -> Answer:
    body, job = req.body, req.job
    text = encode_json(body["progress"], "progress", MAX_PROGRESS_BYTES)
    await st.engine.progress(req.queue, job, body["lease_id"] or "", text)
    return {"status": "claimed", "job_id": job}, 200


@operation("GET", Q + "/batches/{batch}", summary="Show a batch: its counts and its callback", tag=TAG,
           responses={200: shapes.Batch})  # fmt: skip
async def get_batch(st: AppState, req: Request) -> Answer:
    return (await st.engine.get_batch(req.queue, req.params["batch"])).to_json(), 200


@operation("GET", Q + "/events", summary="Stream the queue's job events (text/event-stream)", tag=TAG,
           query=shapes.EventsQuery, responses={200: shapes.EventStream}, waits=True)  # fmt: skip
async def events(st: AppState, req: Request) -> Answer:
    queue = req.queue
    since = req.query["since"]
    if since is None:
        since = _last_event_id(req)
    bounds = await st.engine.read_events(queue)  # a queue that does not exist gets its 404 before the stream starts
    if since is None:
        # "From now" is fixed before the response starts: a client that acts once the stream is open sees every
        # event that follows (starting at the feed's own position later could miss the first ones).
        since = bounds.last
    return Stream(_sse(st, queue, since), "text/event-stream", (("x-accel-buffering", "no"),))


def _last_event_id(req: Request) -> int | None:
    for name, value in req.scope["headers"]:
        if name == b"last-event-id":
            text = value.decode("latin-1").strip()
            if not text.isdigit():
                raise ValidationFailed("Last-Event-ID must be the id of an event (a number)")
            return int(text)
    return None


async def _sse(st: AppState, queue: str, since: int | None) -> AsyncGenerator[bytes, None]:
    yield b": events of queue " + queue.encode() + b"\n\n"
    try:
        async for item in st.hub.events.follow(queue, since, st.settings.events_keepalive):
            if item is None:
                yield b": keep-alive\n\n"
            elif isinstance(item, Dropped):
                detail = f"events {item.after + 1} to {item.oldest - 1} were dropped from the log (events_max)"
                data = {"queue": queue, "after": item.after, "oldest": item.oldest, "detail": detail}
                yield b"event: dropped\ndata: " + orjson.dumps(data) + b"\n\n"
            else:
                yield b"id: %d\nevent: %s\ndata: %s\n\n" % (
                    item.number,
                    item.kind.encode(),
                    orjson.dumps(item.to_json(queue)),
                )
    except StarqError as exc:
        # The stream has started: the error goes as an event, and a client's EventSource reconnects from there.
        yield b"event: error\ndata: " + orjson.dumps({"error": exc.code, "detail": exc.detail}) + b"\n\n"
