"""What one job costs the store inside the Lua functions, path by path: commands per job and store CPU per job.

``python -m benchmarks.storecalls [--jobs N] [--only PATHS] [--lua DIR] [--callgrind FILE]`` starts a store of its
own (as the other scenarios do), drives the engine directly (no HTTP) on the paths of the comparison with BullMQ
and the batch submit: ``cycle1`` (claim 1 + complete, 16 tasks), ``submit1`` (one job per call, 16 tasks),
``submit100`` (100 jobs per call, 4 tasks), ``cycle50`` (claim 50 + one ack, 16 tasks). The worker
paths run on a queue with ``retention: 1`` and go on ticking the queue until its finished records are removed,
so their figures include the removal, as ``vs-bullmq`` counts it. Per path it prints the commands the functions
ran per job, by command (from ``INFO commandstats``: exact, whatever the load) and the store's CPU per job (from
``/proc``: moves with the machine's load).

``--lua DIR`` loads the Lua library from another folder (e.g. ``git archive REV server/engine/lua | tar -x -C
/tmp/rev``) to count an earlier version's commands; this checkout's engine reads the replies, so a path whose
reply shape has changed since (the submit paths, before a submit answered one JSON array) fails with it.
``--callgrind FILE`` runs the store under valgrind's callgrind with instrumentation on during the first chosen
path only: its instruction counts do not move with the load (the path runs ~50 times slower; use a few thousand
jobs).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import coredis
import orjson
import trio

from benchmarks import harness, procstat
from starq.server.embedded import embedded_store
from starq.server.engine import library
from starq.server.engine.engine import Engine, dedupe_hash, open_engine
from starq.server.engine.models import NewJob, new_job_id, new_job_ids

TASKS = 16
# Commands the harness itself sends, not the functions.
NOT_FROM_LUA = {"fcall", "fcall_ro", "info", "function|load", "hello", "client|setinfo", "client|setname", "ping"}


def _jobs(n: int) -> list[NewJob]:
    payloads = [orjson.dumps({"n": i}).decode() for i in range(n)]
    return [NewJob(payload=p, priority=0, run_at_ms=0, dedupe_hash=dedupe_hash(p)) for p in payloads]


async def _fill(engine: Engine, queue: str, n: int) -> None:
    for first in range(0, n, 1000):
        count = min(1000, n - first)
        await engine.submit(queue, _jobs(count), [new_job_id() for _ in range(count)])


async def _commandstats(redis: coredis.Redis[str]) -> dict[str, int]:
    info = await redis.info("commandstats")
    # coredis parses each "cmdstat_<name>" line into a dict of its fields.
    return {name.removeprefix("cmdstat_"): int(cast(dict[str, Any], stats)["calls"]) for name, stats in info.items()}


async def _until_removed(engine: Engine, queue: str) -> None:
    """Ticks the queue (as the maintenance loop does) until it keeps no finished record."""
    while (await engine.queue_info(queue)).counts["completed"]:
        if not (await engine.tick(queue)).more:
            await trio.sleep(0.25)


async def _instrument(pid: int, state: str) -> None:
    """Turns callgrind's instrumentation of the store on or off."""
    await trio.run_process(["callgrind_control", "-i", state, str(pid)], capture_stdout=True, capture_stderr=True)


async def _workers(body: Callable[[int], Awaitable[None]], tasks: int = TASKS) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(tasks):
            nursery.start_soon(body, i)


async def _cycle(engine: Engine, queue: str, jobs: int, count: int) -> None:
    left = [jobs]

    async def worker(i: int) -> None:
        while left[0] > 0:
            claimed = await engine.claim(queue, count, f"w{i}")
            if not claimed:
                return
            left[0] -= len(claimed)
            if count == 1:
                await engine.complete(queue, claimed[0].id, claimed[0].lease_id, "{}")
            else:
                await engine.ack(queue, [(j.id, j.lease_id, "{}") for j in claimed], [])

    await _workers(worker)
    await _until_removed(engine, queue)


async def _submit(engine: Engine, queue: str, jobs: int, per_call: int, tasks: int) -> None:
    left = [jobs]

    async def worker(i: int) -> None:
        while left[0] > 0:
            n = min(per_call, left[0])
            left[0] -= n
            await engine.submit(queue, _jobs(n), new_job_ids(n))

    await _workers(worker, tasks)


# The paths by name: their label, what each runs (engine, queue, jobs), and whether its queue is filled first.
PATHS: dict[str, tuple[str, Callable[[Engine, str, int], Awaitable[None]], bool]] = {
    "cycle1": ("claim 1 + complete, 16 tasks, retention 1", lambda e, q, n: _cycle(e, q, n, 1), True),
    "submit1": ("submit one job per call, 16 tasks", lambda e, q, n: _submit(e, q, n, 1, TASKS), False),
    "submit100": ("submit 100 jobs per call, 4 tasks", lambda e, q, n: _submit(e, q, n, 100, 4), False),
    "cycle50": ("claim 50 + ack, 16 tasks, retention 1", lambda e, q, n: _cycle(e, q, n, 50), True),
}


async def main(url: str, pid: int, jobs: int, lua: Path | None, callgrind: bool, only: list[str]) -> None:
    async with (
        open_engine(url, max_connections=2 * TASKS) as engine,
        coredis.Redis.from_url(url, decode_responses=True) as redis,
    ):
        if lua:
            await redis.function_load(library.build(lua), replace=True)
        for n, name in enumerate(only):
            if callgrind and n > 0:
                break
            label, run, filled = PATHS[name]
            queue = f"storecalls-{n}-{new_job_id()[-6:]}"
            await engine.create_queue(queue, {"retention": 1})
            if filled:
                await _fill(engine, queue, jobs)
            if callgrind:
                await _instrument(pid, "on")
            before, cpu = await _commandstats(redis), procstat.cpu_seconds([pid])
            await run(engine, queue, jobs)
            cpu, after = procstat.cpu_seconds([pid]) - cpu, await _commandstats(redis)
            if callgrind:
                await _instrument(pid, "off")
            calls = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
            from_lua = {k: v for k, v in calls.items() if k not in NOT_FROM_LUA}
            print(f"{label}: {jobs} jobs, store CPU {cpu * 1e6 / jobs:.0f} µs/job (load "
                  f"{procstat.load_average()}),")  # fmt: skip
            print(f"  FCALLs per job {calls.get('fcall', 0) / jobs:.2f}, commands from Lua per job "
                  f"{sum(from_lua.values()) / jobs:.2f}:")  # fmt: skip
            print("  " + ", ".join(f"{k} {v / jobs:.2f}" for k, v in sorted(from_lua.items(), key=lambda kv: -kv[1])))
            await engine.delete_queue(queue)


def run(jobs: int, lua: Path | None, callgrind: str, only: list[str]) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        store = embedded_store(os.path.join(workdir, "store"))
        if callgrind:
            store.args = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={callgrind}",
                          *store.args]  # fmt: skip
            store.ready_timeout = max(store.ready_timeout, 60)
        store.spawn()
        try:
            store.wait_ready()
            assert store.process is not None
            trio.run(main, store.url, store.process.pid, jobs, lua, bool(callgrind), only)
        finally:
            store.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per path")
    parser.add_argument("--lua", type=Path, help="load the Lua library from this folder instead")
    parser.add_argument("--callgrind", default="", help="run the store under callgrind, writing this file")
    parser.add_argument("--only", default=",".join(PATHS), help=f"the paths to run, in order: {', '.join(PATHS)}")
    args = parser.parse_args()
    only = args.only.split(",")
    if unknown := set(only) - set(PATHS):
        parser.error(f"no path {', '.join(sorted(unknown))}; the paths are {', '.join(PATHS)}")
    harness.raise_fd_limit()
    run(args.jobs, args.lua, args.callgrind, only)
