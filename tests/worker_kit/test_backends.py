"""The worker kit under both of anyio's backends, asyncio and Trio, against a real ``starq serve``.

One scenario, written with anyio only, runs each time in an event loop of its own (``anyio.run`` in a thread):
the client's calls one by one (submit, claim, extend, progress, complete, fail, wait, list), then ``Worker``s
(an async and a sync handler, progress from both, a failing job, a ``Retry(delay=...)``), then a shutdown whose
grace runs out (the running job is cancelled and released). The scenario checks in its first line that it runs
on the loop it was given, so the asyncio run cannot pass on Trio by mistake.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import anyio
import pytest
import trio

from starq.worker_kit import Backoff, Retry, RunningJob, StarqClient, Worker
from worker_kit.helpers import FAST_RETRY, KEY

FAST: dict[str, Any] = {"backoff": Backoff(0.05, 0.5), "block_ms": 500}


def running_on() -> str:
    """The event loop of the calling task, asked of each library itself (not of anyio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "trio" if trio.lowlevel.in_trio_task() else "none"
    return "asyncio"


async def client_calls(client: StarqClient, queue: str) -> dict[str, Any]:
    await client.create_queue(queue, retry_delay=0, max_retries=1, claim_timeout=30)
    first = await client.submit(queue, {"n": 1})
    second = await client.submit(queue, {"n": 2})
    one, two = await client.claim(queue, count=2, block_ms=1000, worker="backends")
    expires = await client.extend(queue, one.id, lease_id=one.lease_id)
    await client.progress(queue, one.id, {"done": 1, "of": 2}, lease_id=one.lease_id)
    completed = await client.complete(queue, one.id, {"double": one.payload["n"] * 2}, lease_id=one.lease_id)
    dead = await client.fail(queue, two.id, "no", lease_id=two.lease_id, retry=False)
    async with anyio.create_task_group() as tasks:
        # A wait parked before its job finishes is answered when it does.
        third = await client.submit(queue, {"n": 3})
        waited: list[Any] = []

        async def wait() -> None:
            waited.append(await client.wait(queue, third.id, timeout=30))

        tasks.start_soon(wait)
        (claimed,) = await client.claim(queue, block_ms=1000)
        await client.complete(queue, claimed.id, lease_id=claimed.lease_id)
    page = await client.list_jobs(queue, status="completed")
    return {
        "ids": (one.id, two.id) == (first.id, second.id),
        "extended": bool(expires),
        "progress": (await client.get_job(queue, one.id)).progress,
        "completed": completed,
        "result": (await client.get_job(queue, one.id)).result,
        "dead": dead.status,
        "waited": waited[0].status,
        "listed": sorted(job.id for job in page.jobs) == sorted((one.id, third.id)),
    }


async def async_handler(job: RunningJob) -> Any:
    await job.progress({"step": 1})
    await anyio.sleep(0.01)
    if job.payload.get("fail"):
        raise ValueError(f"job {job.payload['n']} fails")
    return {"n": job.payload["n"], "loop": running_on()}


def sync_handler(job: RunningJob) -> Any:
    job.progress(0.5)  # from the handler's thread, through the worker's loop
    return {"n": job.payload["n"], "thread": running_on()}


async def run_worker(
    client: StarqClient, queue: str, handler: Any, payloads: list[dict], *, max_retries: int = 0, **options: Any
) -> dict:
    """Submits the jobs, runs a worker until every one has finished, and returns each job's end."""
    await client.create_queue(queue, retry_delay=0, max_retries=max_retries)
    ids = [job.id for job in (await client.submit_many(queue, [{"payload": p} for p in payloads])).jobs]
    worker = Worker(client, queue, handler, **{**FAST, **options})
    async with anyio.create_task_group() as tasks:
        await tasks.start(worker.run)
        ends = [await client.wait(queue, job_id, timeout=30) for job_id in ids]
        worker.stop()
    stats = worker.statistics()
    return {
        "ends": [
            (job.status, job.result, job.error.splitlines()[0] if job.error else "", job.progress) for job in ends
        ],
        "stats": (stats.claimed, stats.completed, stats.dead, stats.running),
    }


async def shutdown_releases(client: StarqClient, queue: str) -> dict:
    """A job still running when the grace period ends is cancelled in the handler and released to the queue."""
    await client.create_queue(queue, retry_delay=0)
    job = await client.submit(queue, {"n": 1})
    started = anyio.Event()
    cancelled: list[str] = []

    async def forever(job: RunningJob) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(running_on())
            raise

    worker = Worker(client, queue, forever, grace=0, **FAST)
    async with anyio.create_task_group() as tasks:
        await tasks.start(worker.run)
        await started.wait()
        worker.stop()
    back = await client.get_job(queue, job.id)
    return {
        "cancelled": cancelled,
        "status": back.status,
        "retries": back.retries,
        "interrupted": worker.statistics().interrupted,
    }


async def scenario(url: str, queue: str) -> dict[str, Any]:
    found: dict[str, Any] = {"loop": running_on()}
    async with StarqClient(url, KEY, timeout=10, retry=FAST_RETRY) as client:
        found["client"] = await client_calls(client, queue)
        found["async"] = await run_worker(
            client, queue + "-async", async_handler, [{"n": 1}, {"n": 2, "fail": True}, {"n": 3}], concurrency=2
        )
        found["sync"] = await run_worker(client, queue + "-sync", sync_handler, [{"n": 1}, {"n": 2}], concurrency=2)
        found["retry"] = await run_worker(client, queue + "-retry", retry_once, [{"n": 1}], max_retries=1)
        found["shutdown"] = await shutdown_releases(client, queue + "-shutdown")
    return found


async def retry_once(job: RunningJob) -> str:
    """Asks for a retry after a pause on the first attempt (the worker holds the job meanwhile), then completes."""
    if job.retries == 0:
        raise Retry("later", delay=0.05)
    return "second time"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
async def test_the_client_and_workers_run_on_each_backend(server, queue_name, backend):
    run = functools.partial(anyio.run, scenario, server.url, queue_name, backend=backend)
    found = await trio.to_thread.run_sync(run)
    assert found["loop"] == backend
    assert found["client"] == {
        "ids": True,
        "extended": True,
        "progress": {"done": 1, "of": 2},
        "completed": "completed",
        "result": {"double": 2},
        "dead": "failed",
        "waited": "completed",
        "listed": True,
    }
    assert found["async"] == {
        "ends": [
            ("completed", {"n": 1, "loop": backend}, "", {"step": 1}),
            ("failed", None, "ValueError: job 2 fails", {"step": 1}),
            ("completed", {"n": 3, "loop": backend}, "", {"step": 1}),
        ],
        "stats": (3, 2, 1, 0),
    }
    assert found["sync"] == {
        "ends": [("completed", {"n": n, "thread": "none"}, "", 0.5) for n in (1, 2)],
        "stats": (2, 2, 0, 0),
    }
    assert found["retry"] == {"ends": [("completed", "second time", "later", None)], "stats": (2, 1, 0, 0)}
    assert found["shutdown"] == {"cancelled": [backend], "status": "pending", "retries": 0, "interrupted": 1}
