"""``python -m benchmarks vs-bullmq``: Starq over HTTP against BullMQ for Python in-process, in the same run.

Four paths, each measured on Starq and at once on BullMQ (the order alternates between repeats), each system on a
fresh Valkey of its own started as the other scenarios start theirs (``harness.store``):

| path | Starq | BullMQ (``benchmarks.bullmqref``) |
|---|---|---|
| add one | submit 1 job per request, 16 connections | ``Queue.add``, 16 calls at once |
| add bulk of 100 | submit 100 per request, 4 connections | ``Queue.addBulk`` of 100, 4 calls at once |
| worker c16 | claim 1 + complete, 16 workers | ``Worker`` at concurrency 16 |
| worker c50 | claim 50 + one ack, 16 workers | ``Worker`` at concurrency 50 |

BullMQ's worker removes each finished job as it completes it (``removeOnComplete``); Starq's worker phases run on
a queue with ``retention: 1`` and their store CPU covers the records' removal (``scenarios.cycle(until_removed)``).
Each row gives jobs/s and the store's CPU per job (the Valkey process's own, from ``/proc``); the table gives
Starq's ratios to BullMQ: jobs/s (above 1: Starq is faster) and store CPU per job (below 1: Starq asks less of
the store).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import attrs
import trio

from . import harness, procstat, scenarios
from .run import _noter, _pid, machine
from .scenarios import Sizes


@attrs.frozen
class VsPath:
    kind: str
    label: str
    bullmq: dict[str, Any]  # the spec of benchmarks.bullmqref, without jobs and the store


PATHS = (
    VsPath("add_1", "add one job per call, 16 concurrent", {"op": "add", "tasks": 16}),
    VsPath("add_100", "add bulk of 100, 4 concurrent", {"op": "add_bulk", "tasks": 4, "batch": 100}),
    VsPath("worker_16", "worker c16 (Starq: claim 1 + complete, 16 workers)", {"op": "worker", "concurrency": 16}),
    VsPath("worker_50", "worker c50 (Starq: claim 50 + ack, 16 workers)", {"op": "worker", "concurrency": 50}),
)


@attrs.frozen
class VsSizes:
    jobs: dict[str, int]  # path kind -> jobs, the same on both systems
    seconds: float  # per measured phase, an upper bound

    @classmethod
    def full(cls) -> VsSizes:
        return cls({"add_1": 10_000, "add_100": 100_000, "worker_16": 10_000, "worker_50": 20_000}, 30)

    @classmethod
    def quick(cls) -> VsSizes:
        return cls({"add_1": 200, "add_100": 1_000, "worker_16": 200, "worker_50": 300}, 5)

    def starq(self) -> Sizes:
        """The Starq scenarios' sizes for these paths (16 workers, as BullMQ's concurrency of 16)."""
        return attrs.evolve(
            Sizes.quick(),
            seconds=self.seconds,
            submit_jobs={1: self.jobs["add_1"], 100: self.jobs["add_100"]},
            workers=16,
        )


async def _starq(path: VsPath, server: harness.Server, sampler_of, sizes: VsSizes) -> dict[str, Any]:
    starq = sizes.starq()
    if path.kind == "add_1":
        (row,) = await scenarios.submit(server, sampler_of, starq, batches=(1,))
    elif path.kind == "add_100":
        (row,) = await scenarios.submit(server, sampler_of, starq, batches=(100,))
    else:
        count, mode = (1, "complete") if path.kind == "worker_16" else (50, "ack")
        row, _, _ = await scenarios.cycle(
            server, sampler_of, starq, count=count, mode=mode, jobs=sizes.jobs[path.kind],
            settings={"retention": 1}, until_removed=True,
        )  # fmt: skip
    return {**row, "group": "vs-bullmq", "path": path.kind, "system": "starq"}


async def _bullmq(path: VsPath, store_url: str, store_pid: int, sizes: VsSizes) -> dict[str, Any]:
    spec = {**path.bullmq, "redis_url": store_url, "store_pid": store_pid, "jobs": sizes.jobs[path.kind],
            "seconds": sizes.seconds}  # fmt: skip
    proc = await trio.run_process(
        [sys.executable, "-m", "benchmarks.bullmqref", json.dumps(spec)], capture_stdout=True, cwd=harness.ROOT
    )
    result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    jobs, seconds, store_cpu = result["jobs"], result["seconds"], result["store_cpu_s"]
    return {
        "group": "vs-bullmq",
        "name": f"BullMQ: {path.label}",
        "kind": f"bullmq_{path.kind}",
        "path": path.kind,
        "system": "bullmq",
        "jobs": jobs,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(jobs / seconds, 1) if seconds else None,
        "store_cpu_pct": round(100 * store_cpu / seconds, 1) if seconds else None,
        "store_cpu_us_per_job": round(1e6 * store_cpu / jobs, 1) if jobs else None,
        "exactly_once": result["exactly_once"],
        "left": result["left"],  # the queue's counts afterwards
    }


async def run_vs_once(
    sizes: VsSizes, repeat: int = 0, log=print, rows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One run: for each path, Starq then BullMQ (BullMQ first on odd repeats). Rows carry ``path`` and
    ``system``; they are appended to ``rows`` as phases finish."""
    harness.raise_fd_limit()
    rows = [] if rows is None else rows
    note = _noter(rows, log)
    with (
        tempfile.TemporaryDirectory(prefix="starq-bench-vs-") as workdir,
        harness.store(os.path.join(workdir, "starq")) as starq_store,
        harness.store(os.path.join(workdir, "bullmq")) as bullmq_store,
        harness.starq_server(starq_store.url) as server,
    ):
        own = harness.redis_clients(starq_store.url)
        bullmq_pid = _pid(bullmq_store)
        assert bullmq_pid is not None  # started here, so its process is known

        def sampler_of():
            return scenarios.Sampler(server, starq_store.url, own, _pid(starq_store))

        for path in PATHS:
            systems = ["starq", "bullmq"] if repeat % 2 == 0 else ["bullmq", "starq"]
            for system in systems:
                log(f"[{time.strftime('%H:%M:%S')}] {path.kind} on {system} (load {procstat.load_average()})")
                load = procstat.load_average()
                if system == "starq":
                    row = await _starq(path, server, sampler_of, sizes)
                else:
                    row = await _bullmq(path, bullmq_store.url, bullmq_pid, sizes)
                note([row], load)
    return {
        "machine": {**machine(), "bullmq": _version("bullmq")},
        "sizes": attrs.asdict(sizes),
        "rows": rows,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def compare(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per path: each system's median jobs/s and store CPU per job, and Starq's ratios to BullMQ taken within each
    run (the two measurements of a pair are seconds apart), their median and every run's."""
    out = []
    for path in PATHS:
        pairs = []
        for run in runs:
            got = {row["system"]: row for row in run["rows"] if row.get("path") == path.kind}
            if len(got) == 2:
                pairs.append((got["starq"], got["bullmq"]))
        if not pairs:
            continue
        entry: dict[str, Any] = {"path": path.kind, "label": path.label, "runs": len(pairs)}
        for i, system in enumerate(("starq", "bullmq")):
            entry[system] = {
                "jobs_per_s": _median([p[i]["jobs_per_s"] for p in pairs]),
                "store_cpu_us_per_job": _median([p[i]["store_cpu_us_per_job"] for p in pairs]),
                "exactly_once": all(p[i].get("exactly_once") is True for p in pairs),
            }
        entry["x_rate_all"] = [_ratio(s["jobs_per_s"], b["jobs_per_s"]) for s, b in pairs]
        entry["x_store_cpu_all"] = [_ratio(s["store_cpu_us_per_job"], b["store_cpu_us_per_job"]) for s, b in pairs]
        entry["x_rate"] = _median(entry["x_rate_all"])
        entry["x_store_cpu"] = _median(entry["x_store_cpu_all"])
        out.append(entry)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _n(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(compared: list[dict[str, Any]]) -> str:
    lines = [
        "| path | BullMQ jobs/s | Starq jobs/s | Starq/BullMQ jobs/s (per run) | BullMQ store µs/job "
        "| Starq store µs/job | Starq/BullMQ store CPU per job (per run) | exactly once |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in compared:
        s, b = e["starq"], e["bullmq"]
        per_rate = ", ".join(_n(x, 2) for x in e["x_rate_all"])
        per_cpu = ", ".join(_n(x, 2) for x in e["x_store_cpu_all"])
        exact = "yes" if s["exactly_once"] and b["exactly_once"] else "NO"
        lines.append(
            f"| {e['label']} | {_n(b['jobs_per_s'])} | {_n(s['jobs_per_s'])} | **{_n(e['x_rate'], 2)}** ({per_rate}) "
            f"| {_n(b['store_cpu_us_per_job'])} | {_n(s['store_cpu_us_per_job'])} | **{_n(e['x_store_cpu'], 2)}** "
            f"({per_cpu}) | {exact} |"
        )
    return "\n".join(lines)
