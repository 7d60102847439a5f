"""Queue operations: create, list, inspect, change, pause, resume, retry dead jobs, delete, stats."""

from __future__ import annotations

from . import shapes
from .operations import Answer, AppState, Request, operation

TAG = "queues"
Q = "/api/v1/queues/{name}"


@operation("POST", "/api/v1/queues", summary="Create a queue", tag=TAG, body=shapes.CreateQueue,
           responses={201: shapes.QueueInfo, 409: shapes.Error})  # fmt: skip
async def create_queue(st: AppState, req: Request) -> Answer:
    settings = dict(req.body)
    name = settings.pop("name")
    info = await st.engine.create_queue(name, settings, max_queues=st.settings.max_queues)
    return info.to_json(), 201


@operation("GET", "/api/v1/queues", summary="List queues", tag=TAG, responses={200: shapes.QueueList})
async def list_queues(st: AppState, req: Request) -> Answer:
    return {"queues": [q.to_json() for q in await st.engine.list_queues()]}, 200


@operation("GET", Q, summary="Show a queue with its counts", tag=TAG, responses={200: shapes.QueueInfo})
async def get_queue(st: AppState, req: Request) -> Answer:
    return (await st.engine.queue_info(req.queue)).to_json(), 200


@operation("PATCH", Q, summary="Change a queue's settings", tag=TAG, body=shapes.UpdateQueue,
           responses={200: shapes.QueueInfo})  # fmt: skip
async def update_queue(st: AppState, req: Request) -> Answer:
    # Only what is given changes; null leaves a setting as it is, except an object setting's (it removes it).
    changes = {k: v for k, v in req.body.items() if v is not None or k in shapes.OBJECT_SETTINGS}
    return (await st.engine.update_queue(req.queue, **changes)).to_json(), 200


@operation("DELETE", Q, summary="Delete a queue and all its jobs", tag=TAG, responses={200: shapes.QueueDeleted})
async def delete_queue(st: AppState, req: Request) -> Answer:
    queue = req.queue
    await st.engine.delete_queue(queue)
    st.hub.claims.notify(queue)  # parked claims on it end now
    return {"status": "deleted", "queue": queue}, 200


@operation("POST", Q + "/pause", summary="Pause a queue (it hands out no jobs)", tag=TAG,
           responses={200: shapes.QueueInfo})  # fmt: skip
async def pause_queue(st: AppState, req: Request) -> Answer:
    return (await st.engine.pause(req.queue)).to_json(), 200


@operation("POST", Q + "/resume", summary="Resume a paused queue", tag=TAG, responses={200: shapes.QueueInfo})
async def resume_queue(st: AppState, req: Request) -> Answer:
    return (await st.engine.resume(req.queue)).to_json(), 200


@operation("POST", Q + "/retry", summary="Put every dead (failed) job back to pending", tag=TAG,
           responses={200: shapes.Retried})  # fmt: skip
async def retry_dead(st: AppState, req: Request) -> Answer:
    queue = req.queue
    return {"status": "ok", "queue": queue, "retried": await st.engine.retry_dead(queue)}, 200


@operation("GET", Q + "/stats", summary="Throughput over the last hour and recent workers", tag=TAG,
           responses={200: shapes.Stats})  # fmt: skip
async def queue_stats(st: AppState, req: Request) -> Answer:
    queue = req.queue
    tput = await st.engine.throughput(queue, 720)
    workers = await st.engine.workers(queue)
    return {
        "queue": queue,
        "bucket_seconds": tput.bucket_seconds,
        "now": tput.now,
        "throughput": [{"at": at, "completed": c, "failed": f} for at, c, f in tput.buckets],
        "workers": [{"name": w.name, "last_seen": w.last_seen, "jobs_in_hand": w.jobs_in_hand} for w in workers],
    }, 200


@operation("POST", Q + "/purge", summary="Remove every job of one status", tag=TAG, body=shapes.Purge,
           responses={200: shapes.Purged})  # fmt: skip
async def purge_queue(st: AppState, req: Request) -> Answer:
    queue = req.queue
    purged = await st.engine.purge_status(queue, req.body["status"])
    return {"status": "ok", "queue": queue, "purged": purged}, 200
