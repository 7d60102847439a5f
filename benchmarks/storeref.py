"""The store's limit: the same Lua functions Starq's HTTP API calls, driven directly through ``Engine``.

``python -m benchmarks.storeref '<json spec>'`` prints one JSON result. No HTTP, no Quart, no Hypercorn: the
difference between these figures and the HTTP scenarios is what the HTTP layer costs.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import orjson
import trio

from starq.server.engine.engine import Engine, dedupe_hash, open_engine
from starq.server.engine.models import NewJob, new_job_id


def _new_jobs(n: int, start: int) -> list[NewJob]:
    # The same arguments the HTTP API passes (it hashes every payload, for queues with dedupe on).
    payloads = [orjson.dumps({"n": start + i}).decode() for i in range(n)]
    return [NewJob(payload=p, priority=0, run_at_ms=0, dedupe_hash=dedupe_hash(p)) for p in payloads]


async def main(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs each of ``spec["ops"]`` in turn, on a queue of its own, with one engine (16 connections at most)."""
    async with open_engine(spec["redis_url"], max_connections=max(16, spec["tasks"])) as engine:
        return [await _one(engine, {**spec, **op}) for op in spec["ops"]]


async def _one(engine: Engine, spec: dict[str, Any]) -> dict[str, Any]:
    queue = f"{spec['queue']}-{spec['op']}{spec.get('batch', '')}"
    tasks, jobs, op = spec["tasks"], spec["jobs"], spec["op"]
    done: list[str] = []
    await engine.create_queue(queue, {})
    if op != "submit":
        for first in range(0, jobs, 1000):
            n = min(1000, jobs - first)
            await engine.submit(queue, _new_jobs(n, first), [new_job_id() for _ in range(n)])
    left = {"jobs": jobs}
    deadline = trio.current_time() + spec["seconds"]  # after the fill: only the measured phase is bounded

    async def worker() -> None:
        while left["jobs"] > 0 and trio.current_time() < deadline:
            if op == "submit":
                n = min(spec["batch"], left["jobs"])
                left["jobs"] -= n
                results = await engine.submit(queue, _new_jobs(n, 0), [new_job_id() for _ in range(n)])
                done.extend(r.id for r in results)
                continue
            claimed = await engine.claim(queue, spec["count"], "ref")
            if not claimed:
                return
            left["jobs"] -= len(claimed)
            if op == "ack":
                outcomes = await engine.ack(queue, [(j.id, j.lease_id, "{}") for j in claimed], [])
                done.extend(o.id for o in outcomes if o.error is None)
            else:
                for job in claimed:
                    await engine.complete(queue, job.id, job.lease_id, "{}")
                    done.append(job.id)

    start = time.monotonic()
    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    seconds = time.monotonic() - start
    await engine.delete_queue(queue)
    return {"jobs": len(done), "unique": len(set(done)), "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(trio.run(main, json.loads(sys.argv[1]))))
