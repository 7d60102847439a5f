"""The maintenance group: does the background loop keep up with a burst, and does it keep off the hot path?

Two phases, each on a queue of its own, against the targets of the reliability issue:

- **retention burst**: ``retention_jobs`` jobs on a queue with ``retention: 2`` are claimed 50 at a time and acked
  as fast as 16 workers can; from the moment the last ack returns, how long until the queue keeps no finished
  record (its ``completed`` count is 0). Target: within 10 s (2 s of it is the retention itself).
- **due burst**: ``due_jobs`` jobs submitted with one ``run_at`` while 16 workers wait in blocking claims; from
  that moment, how long until none is left scheduled (all pending, or already claimed), until the first and the
  last job is handed to a claim. Target: all pending within 5 s.

Meanwhile a probe asks for the queue's info every 50 ms on a keep-alive connection of its own (its latency is
what any request waits behind the maintenance work; its counts are the progress), ``/metrics`` is read every
250 ms for the highest ``starq_maintenance_lag_seconds`` of the queue, and the store's memory, key count and
the CPU of the store and the server are sampled every 250 ms. Timestamps are ``time.monotonic()``, which the
client processes use too (system-wide on Linux). The harness uses the HTTP API only, as everywhere else.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import Any

import attrs
import coredis
import orjson
import trio

from . import harness, procstat
from .admin import Admin
from .harness import Server, percentile
from .rawhttp import HTTPConnection
from .scenarios import Sizes, queue_name

RETENTION = 2  # seconds, the setting
RETENTION_TARGET = 10.0  # seconds from the last ack until the finished records are gone
DUE_TARGET = 5.0  # seconds from the due moment until every job is pending
PROBE_EVERY = 0.05
SAMPLE_EVERY = 0.25
# Longest a phase waits for maintenance to catch up, past its target (then it reports what it saw).
CATCH_UP_LIMIT = 60.0
WORKERS = 16
COUNTS = ("pending", "scheduled", "claimed", "completed", "failed", "cancelled")
LAG = re.compile(r"^starq_maintenance_lag_seconds\{([^}]*)\} (\S+)$", re.MULTILINE)


def _now() -> float:
    return time.monotonic() * 1000


@attrs.define
class Watch:
    """What the phase's watchers saw, each entry stamped with ``_now()`` (ms)."""

    server: Server
    store_url: str
    store_pid: int | None
    queue: str
    probes: list[tuple[float, float, dict[str, int]]] = attrs.field(factory=list)  # (t, latency ms, counts)
    lags: list[tuple[float, dict[str, float]]] = attrs.field(factory=list)  # (t, kind -> seconds)
    store: list[tuple[float, int, int, float, float]] = attrs.field(factory=list)  # (t, memory, keys, CPU s ×2)
    probe_errors: int = 0

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._probe)
            nursery.start_soon(self._metrics)
            nursery.start_soon(self._store)

    async def _probe(self) -> None:
        conn = await HTTPConnection.open(self.server.host, self.server.port)
        path = f"/api/v1/queues/{self.queue}"
        try:
            while True:
                t0 = _now()
                status, reply = await conn.request("GET", path)
                t1 = _now()
                if status == 200:
                    info = orjson.loads(reply)
                    self.probes.append((t1, t1 - t0, {k: int(info[k]) for k in COUNTS}))
                else:
                    self.probe_errors += 1
                await trio.sleep(PROBE_EVERY)
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    async def _metrics(self) -> None:
        conn = await HTTPConnection.open(self.server.host, self.server.port)
        mine = f'queue="{self.queue}"'
        try:
            while True:
                status, reply = await conn.request("GET", "/metrics")
                if status == 200:
                    lags = {}
                    for labels, value in LAG.findall(reply.decode()):
                        if mine in labels:
                            kind = re.search(r'kind="([^"]*)"', labels)
                            lags[kind.group(1) if kind else "?"] = float(value)
                    self.lags.append((_now(), lags))
                await trio.sleep(SAMPLE_EVERY)
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    def _store_sample(self) -> tuple[float, int, int, float, float]:
        memory = harness.redis_info(self.store_url, "memory")
        keyspace = harness.redis_info(self.store_url, "keyspace").get("db0", "keys=0")
        keys = int(keyspace.split(",")[0].split("=")[1])
        store_cpu = procstat.cpu_seconds([self.store_pid]) if self.store_pid else 0.0
        return _now(), int(memory["used_memory"]), keys, store_cpu, procstat.cpu_seconds(self.server.pids)

    async def _store(self) -> None:
        while True:
            self.store.append(await trio.to_thread.run_sync(self._store_sample))
            await trio.sleep(SAMPLE_EVERY)

    # -- reading what was seen --------------------------------------------------------------------------------

    def counts_at(self, t: float) -> dict[str, int] | None:
        """The counts of the last probe answered by ``t``."""
        seen = [c for at, _, c in self.probes if at <= t]
        return seen[-1] if seen else None

    def first(self, after: float, test) -> float | None:
        """When the first probe answered after ``after`` whose counts pass ``test`` was answered."""
        return next((at for at, _, c in self.probes if at >= after and test(c)), None)

    def latency(self, name: str, start: float, end: float) -> dict[str, Any]:
        """The probe's latency (ms) over requests answered in [start, end], as fields named ``name_…``."""
        got = [ms for at, ms, _ in self.probes if start <= at <= end]
        return {
            f"{name}_probes": len(got),
            f"{name}_p50_ms": round(percentile(got, 0.5), 1) if got else None,
            f"{name}_p99_ms": round(percentile(got, 0.99), 1) if got else None,
            f"{name}_max_ms": round(max(got), 1) if got else None,
        }

    def max_lag(self, start: float, end: float, kind: str) -> float | None:
        seen = [lags.get(kind, 0.0) for at, lags in self.lags if start <= at <= end]
        return round(max(seen), 2) if seen else None

    def cpu(self, name: str, start: float, end: float) -> dict[str, float | None]:
        """Store and server CPU % between the first and last samples in [start, end]."""
        inside = [s for s in self.store if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return {f"{name}_store_cpu_pct": None, f"{name}_server_cpu_pct": None}
        first, last = inside[0], inside[-1]
        wall = (last[0] - first[0]) / 1000
        return {
            f"{name}_store_cpu_pct": round(100 * (last[3] - first[3]) / wall) if self.store_pid else None,
            f"{name}_server_cpu_pct": round(100 * (last[4] - first[4]) / wall),
        }

    def peak_memory_mb(self) -> float:
        return round(max((s[1] for s in self.store), default=0) / 1e6, 1)


async def _watching(watch: Watch, body):
    """Runs ``body()`` with ``watch`` running; returns what it returned."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        try:
            return await body()
        finally:
            nursery.cancel_scope.cancel()


async def _until(watch: Watch, after: float, test, limit: float) -> float | None:
    """Waits (up to ``limit`` s) for a probe after ``after`` whose counts pass ``test``; returns when it was
    answered."""
    with trio.move_on_after(limit):
        while (found := watch.first(after, test)) is None:
            await trio.sleep(PROBE_EVERY)
        return found
    return None


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 2)


def _memory_mb(url: str) -> float:
    return round(int(harness.redis_info(url, "memory")["used_memory"]) / 1e6, 1)


# Store commands that ran longer than this (µs) are logged (the store's SLOWLOG): what a request waits behind.
SLOW_US = 1000


async def _slowlog_reset(url: str) -> None:
    async with coredis.Redis.from_url(url) as store:
        await store.config_set({"slowlog-log-slower-than": SLOW_US, "slowlog-max-len": 4096})
        await store.slowlog_reset()


async def _slow_calls(url: str) -> dict[str, Any]:
    """The store's calls over ``SLOW_US`` since the reset, of maintenance ticks (``starq_tick``): how many, their
    median and the longest (ms); of everything else (the requests' own calls): how many and the longest."""
    async with coredis.Redis.from_url(url, decode_responses=True) as store:
        entries = await store.slowlog_get(4096)
    ticks = [float(e.duration) for e in entries if "starq_tick" in e.command[:2]]
    other = [float(e.duration) for e in entries if "starq_tick" not in e.command[:2]]
    return {
        "slow_ticks": len(ticks),
        "slow_tick_p50_ms": round(percentile(ticks, 0.5) / 1000, 1) if ticks else None,
        "slowest_tick_ms": round(max(ticks) / 1000, 1) if ticks else None,
        "slow_other_calls": len(other),
        "slowest_other_call_ms": round(max(other) / 1000, 1) if other else None,
    }


def _fcalls(url: str) -> tuple[int, int]:
    """The store's FCALL count and the µs spent in them so far (``INFO commandstats``)."""
    stats = harness.redis_info(url, "commandstats").get("cmdstat_fcall", "")
    fields = dict(part.split("=") for part in stats.split(",") if "=" in part)
    return int(fields.get("calls", 0)), int(fields.get("usec", 0))


async def retention_burst(server: Server, store_url: str, store_pid: int | None, sizes: Sizes) -> dict[str, Any]:
    jobs = sizes.retention_jobs
    queue = queue_name("retention")
    async with await Admin.open(server) as admin:
        await admin.create_queue(queue, retention=RETENTION)
        empty_mb = await trio.to_thread.run_sync(_memory_mb, store_url)
        ids = await admin.fill(queue, jobs)
        filled_mb = await trio.to_thread.run_sync(_memory_mb, store_url)
        watch = Watch(server, store_url, store_pid, queue)
        spec = {"kind": "cycle", "host": server.host, "port": server.port, "queue": queue, "count": 50,
                "mode": "ack", "workers": WORKERS, "seconds": 300}  # fmt: skip

        async def body() -> tuple[list[dict[str, Any]], float, float | None, tuple[int, int], tuple[int, int]]:
            await trio.sleep(1)  # the probe's latency with nothing to do, for comparison
            results, _ = await harness.run_clients(spec)
            last_ack = max(r["last_ms"] for r in results)
            calls_at_ack = await trio.to_thread.run_sync(_fcalls, store_url)
            gone = await _until(watch, last_ack, lambda c: c["completed"] == 0, RETENTION_TARGET + CATCH_UP_LIMIT)
            calls_at_gone = await trio.to_thread.run_sync(_fcalls, store_url)
            return results, last_ack, gone, calls_at_ack, calls_at_gone

        await _slowlog_reset(store_url)
        started = _now()
        results, last_ack, gone, calls_at_ack, calls_at_gone = await _watching(watch, body)
        slow = await _slow_calls(store_url)
        after_mb = await trio.to_thread.run_sync(_memory_mb, store_url)
        counts = await admin.counts(queue)
        await admin.delete_queue(queue)
    burst_start = min(r["start_ms"] for r in results)
    claimed = [i for r in results for i in r["claimed"]]
    completed = [i for r in results for i in r["completed"]]
    errors = sum(r["errors"] for r in results)
    kept = watch.counts_at(last_ack) or {}
    end = gone or _now()
    gone_s = _seconds(gone - last_ack) if gone is not None else None
    calls = calls_at_gone[0] - calls_at_ack[0]
    return {
        "group": "maint",
        "kind": "maint_retention",
        "name": f"retention burst: {jobs:,} jobs, retention {RETENTION} s",
        "jobs": jobs,
        "burst_seconds": _seconds(last_ack - burst_start),
        "jobs_per_s": round(len(completed) / ((last_ack - burst_start) / 1000), 1),
        "completed_kept_at_last_ack": kept.get("completed"),
        "completed_kept_peak": max((c["completed"] for _, _, c in watch.probes), default=None),
        # From the last ack until no finished record is kept (None: not within the catch-up limit).
        "measured_seconds": gone_s,
        "target": f"{jobs:,} jobs finished in a burst with retention {RETENTION} s are gone",
        "target_seconds": RETENTION_TARGET,
        "all_gone": gone is not None and counts["completed"] == 0,
        "max_lag_expire_burst_s": watch.max_lag(burst_start, last_ack, "expire"),
        "max_lag_expire_catch_up_s": watch.max_lag(last_ack, end, "expire"),
        **watch.latency("idle", started, burst_start),
        **watch.latency("burst", burst_start, last_ack),
        **watch.latency("catch_up", last_ack, end),
        "probe_errors": watch.probe_errors,
        **watch.cpu("catch_up", last_ack, end),
        # Store time in FCALLs (the ticks, and the probe's and /metrics' reads) from the last ack until gone.
        "catch_up_fcalls": calls,
        "catch_up_fcall_ms": round((calls_at_gone[1] - calls_at_ack[1]) / 1000, 1),
        **slow,
        "store_mb_empty": empty_mb,
        "store_mb_filled": filled_mb,
        "store_mb_peak": watch.peak_memory_mb(),
        "store_mb_after": after_mb,
        "exactly_once": errors == 0
        and len(claimed) == len(set(claimed)) == jobs
        and set(claimed) == set(ids)
        and sorted(completed) == sorted(claimed),
        "errors": errors,
    }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="milliseconds")


async def due_burst(server: Server, store_url: str, store_pid: int | None, sizes: Sizes) -> dict[str, Any]:
    jobs = sizes.due_jobs
    queue = queue_name("due")
    async with await Admin.open(server) as admin:
        await admin.create_queue(queue)
        # The due moment on both clocks: the store's (the wall clock, as ``run_at``) and the processes' own.
        due_mono, due_epoch = _now() + sizes.due_lead * 1000, time.time() + sizes.due_lead
        run_at = _iso(due_epoch)
        ids = await admin.submit(queue, [{"payload": {"n": n}, "run_at": run_at} for n in range(jobs)])
        submitted = _now()
        watch = Watch(server, store_url, store_pid, queue)
        block_ms = min(60_000, int(due_mono - _now()) + 30_000)
        spec = {"kind": "cycle", "host": server.host, "port": server.port, "queue": queue, "count": 50,
                "mode": "ack", "workers": WORKERS, "seconds": 300, "block_ms": block_ms, "timeline": True,
                "jobs": jobs}  # fmt: skip

        async def body() -> tuple[list[dict[str, Any]], float | None]:
            results, _ = await harness.run_clients(spec)
            # Every job was claimed, so every one was promoted: the probe has seen it (or sees it now).
            promoted = await _until(watch, due_mono, lambda c: c["scheduled"] == 0, CATCH_UP_LIMIT)
            return results, promoted

        await _slowlog_reset(store_url)
        started = _now()
        results, promoted = await _watching(watch, body)
        slow = await _slow_calls(store_url)
        counts = await admin.counts(queue)
        await admin.delete_queue(queue)
    claimed = [i for r in results for i in r["claimed"]]
    completed = [i for r in results for i in r["completed"]]
    errors = sum(r["errors"] for r in results)
    handed = sorted(got for r in results for _, got, _ in r["timeline"])
    last_ack = max(r["last_ms"] for r in results)
    promoted_s = _seconds(promoted - due_mono) if promoted is not None else None
    return {
        "group": "maint",
        "kind": "maint_due",
        "name": f"due burst: {jobs:,} jobs due at once",
        "jobs": jobs,
        "submit_seconds": _seconds(submitted - (due_mono - sizes.due_lead * 1000)),
        "submitted_before_due": submitted < due_mono,
        # From the due moment until none is left scheduled (None: not within the catch-up limit).
        "measured_seconds": promoted_s,
        "target": f"{jobs:,} jobs due at the same moment are pending",
        "target_seconds": DUE_TARGET,
        "first_claim_seconds": _seconds(handed[0] - due_mono) if handed else None,
        "all_claimed_seconds": _seconds(handed[-1] - due_mono) if handed else None,
        "all_acked_seconds": _seconds(last_ack - due_mono),
        "pending_peak": max((c["pending"] for _, _, c in watch.probes), default=None),
        "max_lag_promote_s": watch.max_lag(due_mono, last_ack, "promote"),
        **watch.latency("idle", started, due_mono),
        **watch.latency("catch_up", due_mono, promoted or last_ack),
        "probe_errors": watch.probe_errors,
        **watch.cpu("catch_up", due_mono, promoted or last_ack),
        "store_mb_peak": watch.peak_memory_mb(),
        **slow,
        # Every job promoted exactly once and handed to one claim: none lost, none twice, none left.
        "all_promoted": promoted is not None,
        "exactly_once": errors == 0
        and len(claimed) == len(set(claimed)) == jobs
        and set(claimed) == set(ids)
        and sorted(completed) == sorted(claimed)
        and counts["completed"] == jobs
        and counts["pending"] == counts["scheduled"] == counts["claimed"] == 0,
        "errors": errors,
    }


async def run(server: Server, store_url: str, store_pid: int | None, sizes: Sizes) -> list[dict[str, Any]]:
    return [
        await retention_burst(server, store_url, store_pid, sizes),
        await due_burst(server, store_url, store_pid, sizes),
    ]
