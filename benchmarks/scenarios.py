"""The scenarios of the benchmark run. Each returns result rows (plain dicts) for the report.

Sizes come from ``Sizes``: the full run, or ``--quick`` (seconds, for the CI smoke test). Every scenario
checks exactly-once delivery from the ids the clients saw and the queue's own counts afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import orjson
import trio

from . import harness, procstat
from .admin import Admin, default_item
from .apps import NOOP_PATH
from .harness import Server, percentile
from .rawhttp import HTTPConnection

# The original Starq on this machine (FastAPI + uvicorn + redis-py, one process), from the stack notes.
ORIGINAL = {"submit_1": 879, "submit_100": 10_500, "cycle_1": 498, "cycle_10": 754}


@attrs.frozen
class Sizes:
    """How much each scenario does. The defaults are the full run's; ``quick()`` is the smoke test's."""

    seconds: float = 30  # per measured phase, an upper bound (phases also stop when their job count is done)
    ceiling_requests: int = 200_000
    submit_jobs: dict[int, int] = attrs.field(factory=lambda: {1: 5_000, 100: 100_000, 1000: 200_000})  # batch -> jobs
    cycle_jobs: int = 5_000
    ack_jobs: int = 100_000
    workers: int = 16
    waiters: tuple[int, ...] = (1_000, 5_000, 10_000)
    wakes: int = 200
    retries: int = 8
    other_jobs: int = 2_000  # jobs in the queue the other routes read (64 of them claimed, for extend)
    other_requests: int = 20_000  # per route (phases also stop after 8 s)
    flow_jobs: int = 5_000
    flow_keys: int = 1_000
    # (max, per_ms). The first as the issue suggests it (above what claim 1 + complete does on this machine: what
    # the check costs); the second below it (what the limit lets through).
    rate_limits: tuple[tuple[int, int], ...] = ((2_000, 1_000), (40, 100))
    rate_seconds: float = 5  # a rate-limited phase gets the jobs its limit allows in this long (at most flow_jobs)
    # The maintenance group, at the targets of the reliability issue:
    retention_jobs: int = 40_000  # finished in one burst on a queue with ``retention: 2``
    due_jobs: int = 20_000  # submitted with one ``run_at``
    due_lead: float = 12  # seconds from the start of that submit to the ``run_at``
    # Clients waiting for jobs' outcomes (GET …/jobs/{id}?wait_ms), per phase.
    outcome_waiters: tuple[int, ...] = (10_000,)

    @classmethod
    def full(cls) -> Sizes:
        return cls()

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            seconds=3,
            ceiling_requests=600,
            submit_jobs={1: 100, 100: 1_000, 1000: 2_000},
            cycle_jobs=100,
            ack_jobs=500,
            workers=4,
            waiters=(50,),
            wakes=5,
            retries=1,
            other_jobs=100,
            other_requests=300,
            flow_jobs=100,
            flow_keys=20,
            rate_limits=((2_000, 1_000), (20, 100)),
            rate_seconds=0.5,
            retention_jobs=2_000,
            due_jobs=2_000,
            due_lead=3,
            outcome_waiters=(40,),
        )


# A look at a scenario's queue before it is deleted (given the admin, the queue and the jobs the phase moved);
# returns fields for the scenario's row.
Inspect = Callable[[Admin, str, int], Awaitable[dict[str, Any]]]

# How the tables name a queue's path.
QUEUE_PATH = "/api/v1/queues/{q}"


def queue_name(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


class Sampler:
    """Peak server RSS and Redis connections while a phase runs (sampled every quarter second), and the CPU the
    store process used meanwhile (when its pid is given)."""

    def __init__(self, server: Server, redis_url: str, own_connections: int, store_pid: int | None = None) -> None:
        self.server, self.redis_url, self.own = server, redis_url, own_connections
        self.rss_mb = 0.0
        self.redis_conns = 0
        self._store = procstat.CpuMeter([store_pid]) if store_pid else None
        self.store_cpu: float | None = None

    def sample(self) -> None:
        self.rss_mb = max(self.rss_mb, procstat.rss_mb(self.server.pids))
        self.redis_conns = max(self.redis_conns, harness.redis_clients(self.redis_url) - self.own)

    @contextlib.asynccontextmanager
    async def running(self):
        async def loop() -> None:
            while True:
                await trio.to_thread.run_sync(self.sample)
                await trio.sleep(0.25)

        if self._store:
            self._store.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()
        if self._store:
            self.store_cpu = self._store.stop()
        self.sample()


@attrs.frozen
class Phase:
    """What the client processes of a measured phase did: their results, merged (wall seconds over all of them,
    every latency, requests and errors), and the CPU and samples taken meanwhile."""

    results: list[dict[str, Any]]
    seconds: float
    latencies: list[float]
    requests: int
    errors: int
    server_cpu: float
    client_cpu: float
    sampler: Sampler | None


async def _measure(
    pids: list[int],
    spec: dict[str, Any],
    sampler_of=None,
    then: Callable[[], Awaitable[None]] | None = None,
) -> Phase:
    """Runs the client processes of ``spec`` while metering the CPU of ``pids`` (and sampling with
    ``sampler_of()`` when given); ``then`` still counts in the phase, after the clients are done."""
    meter = procstat.CpuMeter(pids)
    meter.start()
    async with sampler_of().running() if sampler_of else contextlib.nullcontext() as sampler:
        results, client_cpu = await harness.run_clients(spec)
        if then is not None:
            await then()
    server_cpu = meter.stop()
    return Phase(
        results=results,
        seconds=(max(r["end_ms"] for r in results) - min(r["start_ms"] for r in results)) / 1000,
        latencies=[x for r in results for x in r["latencies"]],
        requests=sum(r["requests"] for r in results),
        errors=sum(r["errors"] for r in results),
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        sampler=sampler,
    )


def _row(group: str, name: str, phase: Phase, *, jobs: int | None, **extra: Any) -> dict[str, Any]:
    seconds, latencies, requests = phase.seconds, phase.latencies, phase.requests
    server_cpu, client_cpu, sampler = phase.server_cpu, phase.client_cpu, phase.sampler
    store_cpu = sampler.store_cpu if sampler else None
    return {
        "group": group,
        "name": name,
        "jobs": jobs,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(jobs / seconds, 1) if seconds and jobs is not None else None,
        "requests_per_s": round(requests / seconds, 1) if seconds else None,
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "server_cpu_pct": round(100 * server_cpu / seconds, 1) if seconds else None,
        "server_cpu_us_per_request": round(1e6 * server_cpu / requests, 1) if requests else None,
        # What one fully busy server process would do: the figure that does not depend on how much CPU the
        # other processes on a shared machine left to the server during the run.
        "jobs_per_server_cpu_s": round(jobs / server_cpu, 1) if server_cpu and jobs is not None else None,
        "client_cpu_pct": round(100 * client_cpu / seconds, 1) if seconds else None,
        # The store's own CPU (Valkey, all its threads) while the clients ran: the other half of a request's cost.
        "store_cpu_pct": round(100 * store_cpu / seconds, 1) if store_cpu is not None and seconds else None,
        "store_cpu_us_per_request": round(1e6 * store_cpu / requests, 1)
        if store_cpu is not None and requests
        else None,
        "store_cpu_us_per_job": round(1e6 * store_cpu / jobs, 1) if store_cpu is not None and jobs else None,
        "server_rss_mb": round(sampler.rss_mb, 1) if sampler else None,
        "redis_conns": sampler.redis_conns if sampler else None,
        **extra,
    }


# -- references ------------------------------------------------------------------------------------------------


async def http_references(sizes: Sizes, kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The load generator's own ceiling, and a do-nothing API operation on Starq's API path (the HTTP ceiling) and,
    for reference, on stock Hypercorn-trio; with the full sizes also a bare ASGI app on both."""
    rows = []
    apps = [
        ("trivial", "load generator vs trivial server"),
        ("bare", "bare ASGI, stock hypercorn-trio"),
        ("bare-http1", "bare ASGI, Starq's http1"),
        ("stock", "no-op operation, ApiService on stock hypercorn-trio"),
        ("ceiling", "no-op operation, Starq's API path (HTTP ceiling)"),
    ]
    if kinds is not None:
        apps = [app for app in apps if app[0] in kinds]
    elif sizes.seconds <= 5:
        apps = [app for app in apps if not app[0].startswith("bare")]
    for kind, label in apps:
        with harness.reference_app(kind) as app:
            spec = {
                "kind": "get_loop",
                "host": app.host,
                "port": app.port,
                "path": NOOP_PATH,
                "requests": sizes.ceiling_requests,
                "seconds": min(sizes.seconds, 8),
                "connections": 32,
            }
            phase = await _measure(app.pids, spec)
            rows.append(
                _row(
                    "reference",
                    label,
                    phase,
                    jobs=phase.requests,
                    kind=kind,
                    errors=phase.errors,
                    requests_per_server_cpu_s=round(phase.requests / phase.server_cpu) if phase.server_cpu else None,
                )
            )
    return rows


async def store_reference(redis_url: str, sizes: Sizes) -> list[dict[str, Any]]:
    """The same engine operations without HTTP (16 concurrent tasks in one process)."""
    ops = [
        {"name": "submit 1/call", "op": "submit", "batch": 1, "jobs": sizes.submit_jobs[1]},
        {"name": "submit 100/call", "op": "submit", "batch": 100, "jobs": sizes.submit_jobs[100]},
        {"name": "claim 1 + complete", "op": "complete", "count": 1, "jobs": sizes.cycle_jobs},
        {"name": "claim 50 + ack", "op": "ack", "count": 50, "jobs": sizes.ack_jobs},
    ]
    spec = {
        "redis_url": redis_url,
        "queue": queue_name("ref"),
        "tasks": sizes.workers,
        "seconds": sizes.seconds,
        "ops": ops,
    }
    proc = await trio.run_process([sys.executable, "-m", "benchmarks.storeref", json.dumps(spec)], capture_stdout=True)
    rows = []
    for op, result in zip(ops, json.loads(proc.stdout)):
        rows.append(
            {
                "group": "reference",
                "name": f"store limit: {op['name']}",
                "kind": f"store_{op['op']}",
                "jobs": result["jobs"],
                "seconds": round(result["seconds"], 3),
                "jobs_per_s": round(result["jobs"] / result["seconds"], 1),
                "exactly_once": result["unique"] == result["jobs"],
            }
        )
    return rows


# -- submit / cycle ---------------------------------------------------------------------------------------------
#
# Queues are made, filled, checked and deleted over the HTTP API (``admin.Admin``), never through this checkout's
# engine, so every scenario here runs unchanged against another version of Starq (``run --baseline REV``).


async def submit(
    server: Server,
    sampler_of,
    sizes: Sizes,
    batches: tuple[int, ...] | None = None,
    settings: dict[str, Any] | None = None,
    inspect: Inspect | None = None,
) -> list[dict[str, Any]]:
    """Submits each size of ``sizes.submit_jobs`` (or those in ``batches``) to a fresh queue made with
    ``settings``; ``inspect`` looks at the queue before it is deleted (its fields join the row)."""
    rows = []
    async with await Admin.open(server) as admin:
        for batch, jobs in sizes.submit_jobs.items():
            if batches is not None and batch not in batches:
                continue
            queue = queue_name("submit")
            await admin.create_queue(queue, **(settings or {}))
            spec = {
                "kind": "submit",
                "host": server.host,
                "port": server.port,
                "queue": queue,
                "batch": batch,
                "jobs": jobs,
                "seconds": sizes.seconds,
                "connections": 16 if batch == 1 else 4,
                "per_proc": ["jobs"],
            }
            phase = await _measure(server.pids, spec, sampler_of)
            ids = [i for r in phase.results for i in r["ids"]]
            counts = await admin.counts(queue)
            # A phase may end at its deadline before all jobs are sent: what counts is that every acknowledged job
            # is stored exactly once.
            exact = phase.errors == 0 and len(ids) == len(set(ids)) == counts["pending"]
            seen = await inspect(admin, queue, len(ids)) if inspect else {}
            rows.append(
                _row(
                    "submit",
                    f"submit {batch}/request",
                    phase,
                    jobs=len(ids),
                    kind=f"submit_{batch}",
                    errors=phase.errors,
                    exactly_once=exact,
                    **seen,
                )
            )
            await admin.delete_queue(queue)
    return rows


def _exactly_once(
    results: list[dict[str, Any]], ids: set[str], counts: dict[str, int], errors: int, kept: bool = True
) -> bool:
    """None of the jobs delivered twice, lost, or left claimed (a phase may end at its deadline with jobs left).
    ``kept``: whether the finished records are still there to count (not once retention has removed them)."""
    claimed = [i for r in results for i in r["claimed"]]
    completed = [i for r in results for i in r["completed"]]
    return (
        errors == 0
        and len(claimed) == len(set(claimed))
        and set(claimed) <= ids
        and sorted(completed) == sorted(claimed)
        and counts["completed"] == (len(completed) if kept else 0)
        and counts["pending"] == len(ids) - len(claimed)
        and counts["claimed"] == 0
    )


async def cycle(
    server: Server,
    sampler_of,
    sizes: Sizes,
    *,
    count: int,
    mode: str,
    jobs: int,
    group: str = "cycle",
    label: str = "",
    kind: str = "",
    settings: dict[str, Any] | None = None,
    item=default_item,
    block_ms: int = 0,
    timeline: bool = False,
    until_removed: bool = False,
    inspect: Inspect | None = None,
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """Workers drain a queue of ``jobs`` pre-filled jobs (``item(n)`` each, on a queue made with ``settings``).
    Returns the row, the ids in submission order and the client processes' results (for further checks).
    ``inspect`` looks at the queue before it is deleted (its fields join the row).

    ``until_removed`` (with a short ``retention`` in ``settings``): the phase's server and store CPU also cover the
    removal of the finished records, until the queue counts none (what a queue that removes finished jobs at once,
    as BullMQ's ``removeOnComplete`` does, pays within the phase); jobs/s is still the workers'."""
    queue = queue_name("cycle")
    async with await Admin.open(server) as admin:
        await admin.create_queue(queue, **(settings or {}))
        ordered = await admin.fill(queue, jobs, item)
        spec = {
            "kind": "cycle",
            "host": server.host,
            "port": server.port,
            "queue": queue,
            "count": count,
            "mode": mode,
            "workers": sizes.workers,
            "seconds": sizes.seconds,
            "block_ms": block_ms,
            "timeline": timeline,
        }
        removed_after = None

        async def removed() -> None:
            nonlocal removed_after
            finished = time.monotonic()
            with trio.move_on_after(120):
                while (await admin.counts(queue))["completed"] > 0:
                    await trio.sleep(0.1)
                removed_after = round(time.monotonic() - finished, 2)

        phase = await _measure(server.pids, spec, sampler_of, then=removed if until_removed else None)
        results, errors = phase.results, phase.errors
        if block_ms:
            # The workers' last claims wait out their block_ms on an empty queue: the phase ends with the last report.
            last = max(r["last_ms"] for r in results) - min(r["start_ms"] for r in results)
            phase = attrs.evolve(phase, seconds=last / 1000)
        exact = _exactly_once(results, set(ordered), await admin.counts(queue), errors, kept=not until_removed)
        completed = sum(len(r["completed"]) for r in results)
        seen = await inspect(admin, queue, completed) if inspect else {}
        await admin.delete_queue(queue)
    what = f"claim {count} + " + ("ack" if mode == "ack" else "complete each")
    row = _row(
        group,
        label or what,
        phase,
        jobs=completed,
        kind=kind or f"cycle_{count}_{mode}",
        errors=errors,
        exactly_once=exact,
        workers=sizes.workers,
        **seen,
    )
    if until_removed:
        row["finished_removed_after_s"] = removed_after  # None: not all gone within two minutes
        row["exactly_once"] = exact and removed_after is not None
    return row, ordered, results


async def cycles(server: Server, sampler_of, sizes: Sizes) -> list[dict[str, Any]]:
    one, _, _ = await cycle(server, sampler_of, sizes, count=1, mode="complete", jobs=sizes.cycle_jobs)
    five, _, _ = await cycle(
        server,
        sampler_of,
        sizes,
        count=5,
        mode="complete",
        jobs=sizes.cycle_jobs,
        label="claim 5 + complete each (original README worker)",
    )
    fifty, _, _ = await cycle(server, sampler_of, sizes, count=50, mode="ack", jobs=sizes.ack_jobs)
    return [one, five, fifty]


# -- other routes ------------------------------------------------------------------------------------------------


async def other_routes(server: Server, sampler_of, sizes: Sizes) -> list[dict[str, Any]]:
    """Requests that are not the worker's hot loop, 16 connections each, on a queue of ``sizes.other_jobs``
    pending jobs and 64 claimed ones: the queue's info, one job (each connection asks for jobs in turn), the
    newest 50 jobs, and extending the lease of a claimed job (each connection extends 4 of its own in turn).

    Checked: every answer is 200 and names what was asked for (the queue, the job, a list of jobs), and the
    queue's counts are the same afterwards (none of these requests may create, lose or move a job)."""
    connections = 16
    queue = queue_name("other")
    rows = []
    async with await Admin.open(server) as admin:
        await admin.create_queue(queue)
        ids = await admin.fill(queue, sizes.other_jobs)
        held = await admin.claim(queue, connections * 4)
        taken = {job["id"] for job in held}
        pending = [i for i in ids if i not in taken]
        before = await admin.counts(queue)
        base = f"/api/v1/queues/{queue}"
        jobs = base + "/jobs"

        def per_connection(make) -> list[list[list[str]]]:
            return [make(i) for i in range(connections)]

        routes = [
            ("info", f"queue info (GET {QUEUE_PATH})", per_connection(lambda i: [["GET", base, "", f'"{queue}"']])),
            (
                "job",
                f"one job (GET {QUEUE_PATH}/jobs/{{id}})",
                per_connection(
                    lambda i: [["GET", f"{jobs}/{j}", "", f'"{j}"'] for j in pending[i::connections] or pending]
                ),
            ),
            (
                "list",
                f"newest 50 jobs (GET {QUEUE_PATH}/jobs?count=50)",
                per_connection(lambda i: [["GET", jobs + "?count=50", "", '"jobs"']]),
            ),
            (
                "extend",
                f"extend a lease (PUT {QUEUE_PATH}/jobs/{{id}}/extend)",
                per_connection(
                    lambda i: [
                        [
                            "PUT",
                            f"{jobs}/{j['id']}/extend",
                            orjson.dumps({"lease_id": j["lease_id"], "seconds": 600}).decode(),
                            f'"{j["id"]}"',
                        ]
                        for j in held[i * 4 : i * 4 + 4]
                    ]
                ),
            ),
        ]
        for kind, label, lists in routes:
            spec = {
                "kind": "requests",
                "host": server.host,
                "port": server.port,
                "lists": lists,
                "requests": sizes.other_requests,
                "seconds": min(sizes.seconds, 8),
                "connections": connections,
            }
            phase = await _measure(server.pids, spec, sampler_of)
            after = await admin.counts(queue)
            rows.append(
                _row(
                    "other",
                    label,
                    phase,
                    jobs=None,
                    kind=f"other_{kind}",
                    errors=phase.errors,
                    exactly_once=phase.errors == 0 and after == before,
                    connections=connections,
                )
            )
        await admin.delete_queue(queue)
    return rows


# -- flow control ------------------------------------------------------------------------------------------------


def _key_order_held(ordered: list[str], keys: int, results: list[dict[str, Any]]) -> bool:
    """With ``key_concurrency: 1``: each key's jobs were handed out in submission order, one at a time.

    From the client's clocks, which see a claim's answer after the server handed the job out and send a report
    before the server settles it: for each key, sorted by when their claims were answered, the jobs must be in
    submission order, and each must have been reported before the next one's claim was answered. (Necessary for
    the rule, not sufficient: the server's own tests check the rule itself.)"""
    position = {job: n for n, job in enumerate(ordered)}
    by_key: dict[int, list[tuple[float, float, int]]] = {}
    for r in results:
        for job, claimed_at, reported_at in r["timeline"]:
            n = position[job]
            by_key.setdefault(n % keys, []).append((claimed_at, reported_at, n))
    for line in by_key.values():
        line.sort()
        for (_, reported, n), (claimed_next, _, n_next) in itertools.pairwise(line):
            if n_next < n or claimed_next < reported:
                return False
    return True


async def flow(server: Server, sampler_of, sizes: Sizes) -> list[dict[str, Any]]:
    """Claim 1 + complete, 16 workers, on three kinds of queue: plain (the reference for the ratios), with
    ``key_concurrency: 1`` and the jobs spread over ``sizes.flow_keys`` keys, and with each ``rate_limit`` of
    ``sizes.rate_limits`` (one above what this machine does, whose cost is the check; one below it, which must
    hold the rate)."""
    jobs, keys = sizes.flow_jobs, sizes.flow_keys
    rows = []
    plain, _, _ = await cycle(
        server, sampler_of, sizes, count=1, mode="complete", jobs=jobs, group="flow", label="plain queue",
        kind="flow_plain",
    )  # fmt: skip
    rows.append(plain)

    def keyed(n: int) -> dict[str, Any]:
        return {"payload": {"n": n}, "key": f"k{n % keys}"}

    row, ordered, results = await cycle(
        server, sampler_of, sizes, count=1, mode="complete", jobs=jobs, group="flow",
        label=f"key_concurrency 1, {keys:,} keys", kind="flow_keys", settings={"key_concurrency": 1}, item=keyed,
        timeline=True,
    )  # fmt: skip
    row["key_order_held"] = _key_order_held(ordered, keys, results)
    rows.append(row)
    for most, per_ms in sizes.rate_limits:
        limit = most * 1000 / per_ms
        row, _, results = await cycle(
            server, sampler_of, sizes, count=1, mode="complete", jobs=min(jobs, int(limit * sizes.rate_seconds)),
            group="flow",
            label=f"rate_limit {most:,} per {per_ms:,} ms ({limit:,.0f} jobs/s)", kind=f"flow_rate_{most}_{per_ms}",
            settings={"rate_limit": {"max": most, "per_ms": per_ms}}, block_ms=max(2000, 2 * per_ms), timeline=True,
        )  # fmt: skip
        # n jobs at most ``most`` per window need ceil(n / most) windows: the last claim is answered at least
        # (windows - 1) × per_ms after the first hand-out, which came after the phase started.
        claimed = sorted(t for r in results for _, t, _ in r["timeline"])
        start = min(r["start_ms"] for r in results)
        windows = -(-len(claimed) // most)
        row.update(
            rate_limit_per_s=limit,
            vs_rate_limit=round(row["jobs_per_s"] / limit, 2) if row["jobs_per_s"] else None,
            rate_limit_held=not claimed or claimed[-1] - start >= (windows - 1) * per_ms,
            rate_limit_windows=windows,
        )
        rows.append(row)
    for row in rows[1:]:
        if plain["jobs_per_s"] and row["jobs_per_s"]:
            row["vs_plain"] = round(row["jobs_per_s"] / plain["jobs_per_s"], 2)
    return rows


# -- long-poll ---------------------------------------------------------------------------------------------------


async def _waiting(server: Server) -> int:
    """Claims parked in the server, or -1 while it is too busy accepting thousands of connections to answer."""
    try:
        health = await trio.to_thread.run_sync(harness.http_get_json, server, "/api/health")
    except (OSError, ValueError):
        return -1
    return int(health.get("waiting_claims", -1))


class _Lines:
    """Reads the JSON lines a client process prints on its stdout."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream, self._buffer = stream, b""

    async def next(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise RuntimeError("the client process ended early")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


def _client_procs(waiters: int) -> int:
    # One client process opens about 3,000 connections a second here; two share the work of the large phases.
    return 2 if waiters >= 2000 else 1


@contextlib.asynccontextmanager
async def _ready_clients(specs: list[dict[str, Any]]):
    """Long-lived client processes, one per spec, started and ready (imports done, each has said so): yields
    them as ``(process, its stdout's lines)``."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for spec in specs:
            proc, stdout = await stack.enter_async_context(harness.long_lived_client(spec))
            clients.append((proc, _Lines(stdout)))
        with trio.fail_after(60):
            for _, lines in clients:
                await lines.next()  # ready
        yield clients


def _parking_clients(host: str, port: int, queue: str, waiters: int):
    """Client processes holding ``waiters`` claims between them, started and ready: the caller sends ``go`` and,
    later, ``release`` to each."""
    procs = _client_procs(waiters)
    spec = {"kind": "longpoll", "host": host, "port": port, "queue": queue, "block_ms": 30_000, "seconds": 120}
    return _ready_clients(
        [{**spec, "waiters": waiters // procs + (1 if i < waiters % procs else 0)} for i in range(procs)]
    )


async def _tell(clients, line: bytes) -> None:
    for proc, _ in clients:
        await proc.stdin.send_all(line)


async def _client_ceiling(waiters: int) -> float:
    """Seconds the load generator alone takes to open ``waiters`` connections and send their claims, against a
    server that accepts and holds them (``benchmarks.holdserver``)."""
    with harness.hold_server() as hold:
        async with _parking_clients(hold.host, hold.port, "ceiling", waiters) as clients:
            started = time.monotonic()
            await _tell(clients, b"go\n")
            with trio.fail_after(90):
                for _, lines in clients:
                    await lines.next()  # sent
            seconds = time.monotonic() - started
            await _tell(clients, b"release\n")
            for _, lines in clients:
                with trio.fail_after(60):
                    await lines.next()
    return seconds


async def longpoll(server: Server, sampler_of, sizes: Sizes, waiters: int) -> dict[str, Any]:
    """Parks ``waiters`` claims, measures parking, memory and Redis connections, wakes ``sizes.wakes`` of them
    one job at a time, then hangs up on the rest and checks that nothing is left parked or claimed.

    ``server`` should be fresh (the caller starts one per size): a server keeps the memory of an earlier,
    larger phase, and the RSS figures would then measure that phase too. The load generator's own time for
    the same parking, against a server that only holds connections, is measured first and reported with it."""
    client_seconds = await _client_ceiling(waiters)
    queue = queue_name("longpoll")
    async with await Admin.open(server) as admin:
        await admin.create_queue(queue)
    sampler = sampler_of()
    await trio.to_thread.run_sync(sampler.sample)
    rss_before = sampler.rss_mb
    results = []
    park_seconds = None
    async with _parking_clients(server.host, server.port, queue, waiters) as clients:
        cpu = procstat.CpuMeter(server.pids)
        cpu.start()
        started = time.monotonic()
        await _tell(clients, b"go\n")
        # Parked = the server reports every claim waiting (bounded: a broken run fails, it does not hang).
        peak = 0  # the most claims seen parked at once: how far a run that never parks them all got
        with trio.move_on_after(90):
            while (now := await _waiting(server)) < waiters:
                peak = max(peak, now)
                await trio.sleep(0.1)
            peak = now
            park_seconds = time.monotonic() - started
        park_cpu = cpu.stop()
        sent = [(await lines.next())["sent_ms"] for _, lines in clients]
        await trio.to_thread.run_sync(sampler.sample)
        parked_rss, parked_conns = procstat.rss_mb(server.pids), sampler.redis_conns
        # Wake: one job at a time through the API, each stamped with when it was submitted.
        submitted = set()
        conn = await HTTPConnection.open(server.host, server.port)
        for n in range(sizes.wakes):
            body = orjson.dumps({"payload": {"n": n, "t": time.monotonic()}})
            status, reply = await conn.request("POST", f"/api/v1/queues/{queue}/jobs", body)
            submitted.add(orjson.loads(reply)["jobs"][0]["id"])
            await trio.sleep(0.01)
        await conn.aclose()
        with trio.move_on_after(30):
            while not 0 <= await _waiting(server) <= waiters - sizes.wakes:
                await trio.sleep(0.1)
        # Release: every client hangs up on its remaining claims.
        release_started = time.monotonic()
        await _tell(clients, b"release\n")
        for _, lines in clients:
            with trio.fail_after(60):
                results.append(await lines.next())
        released = None
        with trio.move_on_after(30):
            while await _waiting(server) != 0:
                await trio.sleep(0.05)
            released = time.monotonic() - release_started
    received = [(i, d) for r in results for i, d in r["received"]]
    ids = [i for i, _ in received]
    delays = [d for _, d in received]
    async with await Admin.open(server) as admin:
        counts = await admin.counts(queue)
        await admin.delete_queue(queue)
    exact = (
        len(ids) == len(set(ids))
        and set(ids) == submitted
        and counts["claimed"] == len(submitted)
        and counts["pending"] == 0
        and sum(r["errors"] for r in results) == 0
    )
    return {
        "group": "longpoll",
        "name": f"long-poll {waiters:,} waiters",
        "kind": f"longpoll_{waiters}",
        "waiters": waiters,
        "park_seconds": round(park_seconds, 2) if park_seconds is not None else None,
        "peak_parked": peak,
        # Claims answered with no job (their block_ms ran out) and with an error status (503 past the cap, …).
        "answered_empty": sum(r["empty"] for r in results),
        "answered_error": sum(r["errors"] for r in results),
        "error_samples": [e for r in results for e in r["error_samples"]][:5],
        "client_park_seconds": round(client_seconds, 2),
        "client_sent_seconds": round(max(sent) / 1000, 2),
        "client_procs": len(clients),
        "park_server_cpu_s": round(park_cpu, 2),
        "server_cpu_us_per_waiter": round(1e6 * park_cpu / waiters),
        "server_rss_mb": round(parked_rss, 1),
        "server_rss_before_mb": round(rss_before, 1),
        "rss_kb_per_waiter": round((parked_rss - rss_before) * 1024 / waiters, 1),
        "redis_conns": parked_conns,
        "wake_p50_ms": round(percentile(delays, 0.5), 2),
        "wake_p99_ms": round(percentile(delays, 0.99), 2),
        "woken": len(ids),
        "release_seconds": round(released, 2) if released is not None else None,
        "exactly_once": exact,
    }


# -- retry -------------------------------------------------------------------------------------------------------


async def retry(server: Server, sizes: Sizes) -> list[dict[str, Any]]:
    """Time from a ``fail`` answer to the job being handed out again, for two backoff settings. Starq's first
    backoff is ``retry_delay`` × [0.5, 1) (equal jitter), and due retries are promoted by the maintenance loop."""
    rows = []
    for delay in (0, 1):
        queue = queue_name("retry")
        async with await Admin.open(server) as admin:
            await admin.create_queue(queue, retry_delay=delay, max_retries=sizes.retries + 1)
        conn = await HTTPConnection.open(server.host, server.port)
        base = f"/api/v1/queues/{queue}/jobs"
        samples = []
        for n in range(sizes.retries):
            await conn.request("POST", base, orjson.dumps({"payload": {"n": n}}))
            _, reply = await conn.request("POST", base + "/claim", orjson.dumps({"count": 1}))
            job = orjson.loads(reply)["jobs"][0]
            await conn.request("PUT", f"{base}/{job['id']}/fail", orjson.dumps({"lease_id": job["lease_id"]}))
            failed_at = time.monotonic()
            _, reply = await conn.request("POST", base + "/claim", orjson.dumps({"count": 1, "block_ms": 10_000}))
            again = orjson.loads(reply)["jobs"]
            samples.append(time.monotonic() - failed_at if again and again[0]["id"] == job["id"] else None)
            if again:
                await conn.request(
                    "PUT", f"{base}/{job['id']}/complete", orjson.dumps({"lease_id": again[0]["lease_id"]})
                )
        await conn.aclose()
        async with await Admin.open(server) as admin:
            await admin.delete_queue(queue)
        got = [s * 1000 for s in samples if s is not None]
        rows.append(
            {
                "group": "retry",
                "name": f"retry_delay={delay}s: fail -> claimable",
                "kind": f"retry_{delay}",
                "samples": len(samples),
                "expected_ms": f"{delay * 500:.0f}-{delay * 1000:.0f} + up to one maintenance tick (500)",
                "p50_ms": round(percentile(got, 0.5), 1),
                "max_ms": round(max(got), 1) if got else None,
                "exactly_once": len(got) == len(samples),
            }
        )
    return rows
