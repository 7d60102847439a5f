"""``uv run python -m benchmarks.engine_concurrency [--jobs 3000] [--repeat 2]``: the server's store path alone (the
engine's claim 1 + complete, no HTTP) on a fresh Valkey, with 1, 2, 8 and 16 concurrent tasks in one process,
and this process's CPU per job at each. It shows how much of a server process's CPU per job depends on how many
calls it has in flight at once (what a second ``--workers`` process that gets few connections pays;
``benchmarks/README.md``, scale)."""

from __future__ import annotations

import argparse
import tempfile
import time

import trio

from starq.server.engine.engine import Engine, open_engine
from starq.server.engine.models import new_job_id

from . import harness, procstat
from .storeref import _new_jobs

TASKS = (1, 2, 8, 16)


async def _cycle(engine: Engine, tasks: int, jobs: int) -> tuple[float, float]:
    """(this process's CPU µs per job, jobs/s) for ``tasks`` workers draining ``jobs`` jobs."""
    queue = f"engine-concurrency-{tasks}-{time.monotonic_ns()}"
    await engine.create_queue(queue, {})
    for first in range(0, jobs, 1000):
        n = min(1000, jobs - first)
        await engine.submit(queue, _new_jobs(n, first), [new_job_id() for _ in range(n)])
    left = [jobs]
    done: list[str] = []

    async def worker() -> None:
        while left[0] > 0:
            claimed = await engine.claim(queue, 1, "probe")
            if not claimed:
                return
            left[0] -= len(claimed)
            for job in claimed:
                await engine.complete(queue, job.id, job.lease_id, "{}")
                done.append(job.id)

    wall, cpu = time.monotonic(), time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    await engine.delete_queue(queue)
    assert len(done) == len(set(done)) == jobs, "every job completed exactly once"
    return 1e6 * cpu / jobs, jobs / wall


async def main(jobs: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="starq-bench-") as workdir, harness.store(workdir) as store:
        async with open_engine(store.url, max_connections=16) as engine:
            for i in range(repeat):
                print(f"== repeat {i + 1}/{repeat} (load {procstat.load_average()})")
                for tasks in TASKS:
                    us, rate = await _cycle(engine, tasks, jobs)
                    print(f"  {tasks:>2} tasks: {us:,.0f} µs of CPU per job, {rate:,.0f} jobs/s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    trio.run(main, args.jobs, args.repeat)
