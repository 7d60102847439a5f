"""BullMQ for Python as a reference: what a Python user would pick instead of Starq, measured on its own Valkey.

``python -m benchmarks.bullmqref '<json spec>'`` runs one phase and prints one JSON result. It runs under asyncio
(the ``bullmq`` package's only loop), hence a process of its own, started by ``benchmarks.vsbullmq``.

The phases, each on a queue of its own, on no-op jobs (``{"n": i}``):

- ``add``: ``Queue.add`` of one job per call, ``tasks`` calls at once;
- ``add_bulk``: ``Queue.addBulk`` of ``batch`` jobs per call, ``tasks`` calls at once;
- ``worker``: a ``Worker`` at ``concurrency`` drains ``jobs`` jobs added beforehand (with ``removeOnComplete``,
  as BullMQ users run it: finished jobs are removed at completion, so the phase pays for that too).

The store's CPU is the Valkey process's own (``store_pid``, read from ``/proc`` as the other scenarios read it),
over the measured phase only (not the fill of a worker phase). Every phase checks exactly once: the ids added are
distinct and all stored, or the ids processed are distinct, the ones added, and nothing is left waiting or active.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from bullmq import Queue, Worker

from .procstat import CpuMeter

FILL_BATCH = 1000


def _jobs(first: int, n: int, opts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "noop", "data": {"n": first + i}, "opts": opts} for i in range(n)]


async def _add(queue: Queue, spec: dict[str, Any], deadline: float) -> list[str]:
    batch = spec.get("batch", 1)
    left = {"jobs": spec["jobs"]}
    ids: list[str] = []

    async def task() -> None:
        while left["jobs"] > 0 and time.monotonic() < deadline:
            n = min(batch, left["jobs"])
            left["jobs"] -= n
            if spec["op"] == "add":
                job = await queue.add("noop", {"n": left["jobs"]})
                ids.append(job.id)
            else:
                jobs = await queue.addBulk(_jobs(left["jobs"], n, {}))
                ids.extend(job.id for job in jobs)

    await asyncio.gather(*(task() for _ in range(spec["tasks"])))
    return ids


async def _work(queue: Queue, spec: dict[str, Any], meter: CpuMeter) -> tuple[list[str], float, set[str]]:
    """Fills the queue, then (measured) a worker drains it. Returns the ids processed, the seconds and the ids
    added."""
    added: set[str] = set()
    for first in range(0, spec["jobs"], FILL_BATCH):
        n = min(FILL_BATCH, spec["jobs"] - first)
        jobs = await queue.addBulk(_jobs(first, n, {"removeOnComplete": True}))
        added.update(job.id for job in jobs)
    processed: list[str] = []
    done = asyncio.Event()

    async def process(job: Any, token: str) -> None:
        processed.append(job.id)

    def completed(job: Any, result: Any) -> None:
        if len(processed) >= len(added):
            done.set()

    meter.start()
    started = time.monotonic()
    worker = Worker(queue.name, process, {"connection": spec["redis_url"], "concurrency": spec["concurrency"]})
    worker.on("completed", completed)
    try:
        await asyncio.wait_for(done.wait(), spec["seconds"])
    except TimeoutError:
        pass  # a phase that runs out of time reports what it got done (and its exactly-once check still applies)
    seconds = time.monotonic() - started
    await worker.close()
    return processed, seconds, added


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    queue = Queue(f"bench-{spec['op']}-{uuid.uuid4().hex[:8]}", {"connection": spec["redis_url"]})
    meter = CpuMeter([spec["store_pid"]])
    try:
        if spec["op"] == "worker":
            ids, seconds, added = await _work(queue, spec, meter)
            store_cpu = meter.stop()
            counts = await queue.getJobCounts("wait", "active", "completed", "failed", "delayed", "prioritized")
            # None processed twice, none lost, none failed. A phase that ran out of time may leave active the jobs
            # the closing worker had fetched but not started, and on a loaded machine also some it had processed
            # but not moved on (BullMQ's stall check would hand them out again), so the
            # jobs still waiting are at most the unprocessed ones, and waiting plus active at least that many.
            unprocessed = len(added) - len(ids)
            exact = len(ids) == len(set(ids)) and set(ids) <= added
            exact = exact and counts["wait"] <= unprocessed <= counts["wait"] + counts["active"]
            exact = exact and counts["failed"] == 0 and counts["completed"] == 0  # removed on completion
        else:
            meter.start()
            started = time.monotonic()
            ids = await _add(queue, spec, started + spec["seconds"])
            seconds = time.monotonic() - started
            store_cpu = meter.stop()
            counts = await queue.getJobCounts("wait")
            exact = len(ids) == len(set(ids)) == counts["wait"]
        await queue.obliterate(force=True)
    finally:
        await queue.close()
    return {"jobs": len(ids), "seconds": seconds, "store_cpu_s": store_cpu, "exactly_once": exact, "left": counts}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
