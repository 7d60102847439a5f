"""Queue endpoints: create, list, inspect, change, pause, resume, retry dead jobs, delete, stats."""

from __future__ import annotations

from quart import Blueprint, Response

from . import shapes
from .http import json_response, queue_name, read_body, route, state

bp = Blueprint("queues", __name__)
TAG = "queues"
Q = "/api/v1/queues/{name}"


@route(
    bp,
    "POST",
    "/api/v1/queues",
    summary="Create a queue",
    tag=TAG,
    body=shapes.CreateQueue,
    responses={201: shapes.QueueInfo, 409: shapes.Error},
)
async def create_queue() -> Response:
    body = await read_body(shapes.CreateQueue)
    name = body.pop("name")
    info = await state().engine.create_queue(name, body, max_queues=state().settings.max_queues)
    return json_response(info.to_json(), 201)


@route(bp, "GET", "/api/v1/queues", summary="List queues", tag=TAG, responses={200: shapes.QueueList})
async def list_queues() -> Response:
    return json_response({"queues": [q.to_json() for q in await state().engine.list_queues()]})


@route(bp, "GET", Q, summary="Show a queue with its counts", tag=TAG, responses={200: shapes.QueueInfo})
async def get_queue(name: str) -> Response:
    return json_response((await state().engine.queue_info(queue_name(name))).to_json())


@route(
    bp,
    "PATCH",
    Q,
    summary="Change a queue's settings",
    tag=TAG,
    body=shapes.UpdateQueue,
    responses={200: shapes.QueueInfo},
)
async def update_queue(name: str) -> Response:
    body = await read_body(shapes.UpdateQueue)
    changes = {k: v for k, v in body.items() if v is not None}
    return json_response((await state().engine.update_queue(queue_name(name), **changes)).to_json())


@route(bp, "DELETE", Q, summary="Delete a queue and all its jobs", tag=TAG, responses={200: shapes.QueueDeleted})
async def delete_queue(name: str) -> Response:
    name = queue_name(name)
    await state().engine.delete_queue(name)
    state().broker.notify(name)  # parked claims on it end now
    return json_response({"status": "deleted", "queue": name})


@route(
    bp, "POST", Q + "/pause", summary="Pause a queue (it hands out no jobs)", tag=TAG, responses={200: shapes.QueueInfo}
)
async def pause_queue(name: str) -> Response:
    return json_response((await state().engine.pause(queue_name(name))).to_json())


@route(bp, "POST", Q + "/resume", summary="Resume a paused queue", tag=TAG, responses={200: shapes.QueueInfo})
async def resume_queue(name: str) -> Response:
    return json_response((await state().engine.resume(queue_name(name))).to_json())


@route(
    bp,
    "POST",
    Q + "/retry",
    summary="Put every dead (failed) job back to pending",
    tag=TAG,
    responses={200: shapes.Retried},
)
async def retry_dead(name: str) -> Response:
    name = queue_name(name)
    retried = await state().engine.retry_dead(name)
    return json_response({"status": "ok", "queue": name, "retried": retried})


@route(
    bp,
    "GET",
    Q + "/stats",
    summary="Throughput over the last hour and recent workers",
    tag=TAG,
    responses={200: shapes.Stats},
)
async def queue_stats(name: str) -> Response:
    name = queue_name(name)
    engine = state().engine
    tput = await engine.throughput(name, 720)
    workers = await engine.workers(name)
    return json_response(
        {
            "queue": name,
            "bucket_seconds": tput.bucket_seconds,
            "now": tput.now,
            "throughput": [{"at": at, "completed": c, "failed": f} for at, c, f in tput.buckets],
            "workers": [{"name": w.name, "last_seen": w.last_seen, "jobs_in_hand": w.jobs_in_hand} for w in workers],
        }
    )
