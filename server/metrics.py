"""Prometheus metrics for one server process, served at ``GET /metrics`` by ``prometheus-client``.

Three kinds of figures, each gathered where it is cheapest and exact:

* Job counters (submitted, claimed, completed, failed, retried, dead-lettered, reclaimed, released) count
  what *this process* did, read from the engine's own replies by ``MeteredEngine``; the reclaimed count
  comes from the maintenance loop's ``tick``. Sum them over every instance (``sum by (queue)``).
* Queue depth by status, waiting long-polls and whether the store answers are read at scrape time
  (``Metrics.refresh``), so they are the store's truth, the same on every instance.
* Latencies: HTTP requests by route and status, engine operations (each one Redis round trip, except the
  few noted on ``MeteredEngine``), how long claims waited, how long jobs ran and how long they queued.

Every metric lives in a registry of its own (never prometheus-client's global one), so several apps in one
process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from starq.worker_kit.errors import StarqError

from .engine.models import STATUSES

__all__ = ["CONTENT_TYPE_LATEST", "MeteredBroker", "MeteredEngine", "Metrics"]

# prometheus-client adds a ``*_created`` series (a timestamp) to every counter and histogram child, which the text
# format types as a gauge: a family no one declared, doubling the series of each. The switch is prometheus-client's
# and process-wide (it is read at each scrape, for every registry), so it is thrown once, here, before any metric
# of Starq's own registries exists.
disable_created_metrics()

# Long-polls last up to a minute and jobs may run for hours; the buckets span both ends.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 10)
# Claim times remembered to measure run time; past this many jobs in hand the oldest are forgotten.
MAX_TRACKED_CLAIMS = 100_000


class Metrics:
    """Every metric of one server process, in its own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def jobs(name: str, what: str) -> Counter:
            return Counter(f"starq_jobs_{name}", f"Jobs {what} through this process.", ["queue"], registry=registry)

        self.submitted = jobs("submitted", "submitted (skipped duplicates excluded)")
        self.claimed = jobs("claimed", "handed out to workers")
        self.completed = jobs("completed", "reported completed")
        self.failed = jobs("failed", "reported failed (each failed attempt; expired leases excluded)")
        self.retried = jobs("retried", "put back in line after a failed attempt a worker reported")
        self.dead_lettered = jobs("dead_lettered", "dead-lettered (status failed) by a reported failure")
        self.reclaimed = jobs(
            "reclaimed", "whose lease expired, reclaimed (retried or dead-lettered) by this process's maintenance loop"
        )
        self.released = jobs("released", "returned to the queue because the claiming client never got them")
        self.depth = Gauge(
            "starq_queue_jobs",
            "Jobs in a queue by status, read from the store at scrape time.",
            ["queue", "status"],
            registry=registry,
        )
        self.paused = Gauge("starq_queue_paused", "1 when the queue is paused.", ["queue"], registry=registry)
        self.waiting = Gauge("starq_claims_waiting", "Long-poll claims parked in this process.", registry=registry)
        self.store_up = Gauge("starq_store_up", "1 when the store answered the last scrape.", registry=registry)
        self.claim_wait = Histogram(
            "starq_claim_wait_seconds",
            "How long a claim request waited before it was answered.",
            ["queue", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.job_queued = Histogram(
            "starq_job_queued_seconds",
            "Time from submission to a job's first claim (store clock).",
            ["queue"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.job_run = Histogram(
            "starq_job_run_seconds",
            "Time from claim to complete/fail, for jobs claimed and reported through this process.",
            ["queue", "outcome"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.store_op = Histogram(
            "starq_store_operation_seconds",
            "Round-trip time of engine operations against the store.",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.store_errors = Counter(
            "starq_store_errors",
            "Engine operations that failed because the store could not answer.",
            ["operation"],
            registry=registry,
        )
        self.http_requests = Counter(
            "starq_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_latency = Histogram(
            "starq_http_request_duration_seconds",
            "HTTP request latency (long-poll claims include their wait).",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._claimed_at: OrderedDict[tuple[str, str], float] = OrderedDict()
        # ``metric.labels(...)`` costs a few microseconds (it validates and converts every label); the calls
        # made on every request go through these memos instead. Label values are bounded the same way as
        # prometheus-client's own children (routes, statuses, operations, queue names), and none of these
        # metrics is ever cleared.
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoised (only for metrics that are never cleared)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_request(self, method: str, rule: str, status: int, seconds: float) -> None:
        """Counts one HTTP request answered with ``status`` by the route ``rule`` (its template, never the raw
        path, so a label cannot take unbounded values) after ``seconds``."""
        children = self._http.get((method, rule, status))
        if children is None:
            labels = (method, rule, str(status))
            children = self._http[(method, rule, status)] = (
                self.http_requests.labels(*labels),
                self.http_latency.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)

    # -- run time bookkeeping -------------------------------------------------------------------------------

    def claimed_jobs(self, queue: str, jobs: list[Any]) -> None:
        if not jobs:
            return
        self.child(self.claimed, queue).inc(len(jobs))
        now = time.monotonic()
        for job in jobs:
            self._claimed_at[(queue, job.id)] = now
            if not job.retries:
                waited = _seconds_between(job.created_at, job.claimed_at)
                if waited is not None:
                    self.child(self.job_queued, queue).observe(waited)
        while len(self._claimed_at) > MAX_TRACKED_CLAIMS:
            self._claimed_at.popitem(last=False)

    def job_ended(self, queue: str, job_id: str, outcome: str) -> None:
        started = self._claimed_at.pop((queue, job_id), None)
        if started is not None:
            self.child(self.job_run, queue, outcome).observe(time.monotonic() - started)

    def failed_attempt(self, queue: str, job_id: str, status: str) -> None:
        self.child(self.failed, queue).inc()
        self.job_ended(queue, job_id, "failed")
        if status == "failed":
            self.child(self.dead_lettered, queue).inc()
        else:
            self.child(self.retried, queue).inc()

    # -- scrape ---------------------------------------------------------------------------------------------

    async def refresh(self, engine: Any, waiting: int) -> None:
        """Reads queue depths from the store (one round trip per queue), then sets every gauge at once."""
        self.waiting.set(waiting)
        try:
            infos = await engine.list_queues()
        except StarqError:
            self.store_up.set(0)
            return
        self.store_up.set(1)
        # Cleared and refilled without an await in between, so a deleted queue's series disappear and two
        # concurrent scrapes never see a half-filled set.
        self.depth.clear()
        self.paused.clear()
        for info in infos:
            for status in STATUSES:
                self.depth.labels(info.name, status).set(info.counts.get(status, 0))
            self.paused.labels(info.name).set(1 if info.paused else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _seconds_between(start: str, end: str) -> float | None:
    try:
        delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    except ValueError:
        return None
    return max(delta.total_seconds(), 0.0)


class MeteredEngine:
    """An ``Engine`` that counts what passes through it. Everything not overridden is the engine's own.

    Each timed operation is one Redis round trip, except ``list_queues`` (one per queue), ``delete_queue``,
    ``purge`` and ``retry_dead`` (chunked).
    """

    def __init__(self, engine: Any, metrics: Metrics) -> None:
        self.inner = engine
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _timed(self, operation: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call
        except StarqError as exc:
            if exc.status == 503:
                self.metrics.store_errors.labels(operation).inc()
            raise
        finally:
            self.metrics.child(self.metrics.store_op, operation).observe(time.perf_counter() - started)

    async def submit(self, queue: str, jobs: Any, ids: Any) -> Any:
        results = await self._timed("submit", self.inner.submit(queue, jobs, ids))
        fresh = sum(1 for r in results if not r.skipped)
        if fresh:
            self.metrics.child(self.metrics.submitted, queue).inc(fresh)
        return results

    async def claim(self, queue: str, count: int, worker: str = "") -> Any:
        jobs = await self._timed("claim", self.inner.claim(queue, count, worker))
        self.metrics.claimed_jobs(queue, jobs)
        return jobs

    async def release(self, queue: str, jobs: Any) -> int:
        released = await self._timed("release", self.inner.release(queue, jobs))
        if released:
            self.metrics.released.labels(queue).inc(released)
        for job in jobs:
            self.metrics._claimed_at.pop((queue, job.id), None)
        return released

    async def complete(self, queue: str, job_id: str, lease_id: str = "", result_json: str = "{}") -> str:
        status = await self._timed("complete", self.inner.complete(queue, job_id, lease_id, result_json))
        self.metrics.child(self.metrics.completed, queue).inc()
        self.metrics.job_ended(queue, job_id, "completed")
        return status

    async def fail(self, queue: str, job_id: str, lease_id: str = "", error: str = "", retry: bool = True) -> Any:
        status, retries = await self._timed("fail", self.inner.fail(queue, job_id, lease_id, error, retry))
        self.metrics.failed_attempt(queue, job_id, status)
        return status, retries

    async def ack(self, queue: str, completes: Any, fails: Any) -> Any:
        outcomes = await self._timed("ack", self.inner.ack(queue, completes, fails))
        completed = 0
        for i, outcome in enumerate(outcomes):
            if outcome.error is not None:
                continue
            if i < len(completes):
                completed += 1
                self.metrics.job_ended(queue, outcome.id, "completed")
            else:
                self.metrics.failed_attempt(queue, outcome.id, outcome.status)
        if completed:
            # One increment for the batch: each one takes prometheus-client's lock.
            self.metrics.child(self.metrics.completed, queue).inc(completed)
        return outcomes

    async def tick(self, queue: str) -> tuple[int, int, int]:
        promoted, reclaimed, expired = await self._timed("tick", self.inner.tick(queue))
        if reclaimed:
            self.metrics.reclaimed.labels(queue).inc(reclaimed)
        return promoted, reclaimed, expired

    async def tick_many(self, queues: Any) -> dict[str, tuple[int, int, int]]:
        ticked = await self._timed("tick", self.inner.tick_many(queues))
        for queue, (_promoted, reclaimed, _expired) in ticked.items():
            if reclaimed:
                self.metrics.reclaimed.labels(queue).inc(reclaimed)
        return ticked


def _plain(name: str) -> Any:
    async def call(self: MeteredEngine, *args: Any, **kwargs: Any) -> Any:
        return await self._timed(name, getattr(self.inner, name)(*args, **kwargs))

    call.__name__ = name
    return call


# The remaining store operations are only timed.
for _name in (
    "create_queue",
    "queue_info",
    "list_queues",
    "queue_names",
    "update_queue",
    "pause",
    "resume",
    "delete_queue",
    "purge",
    "extend",
    "cancel",
    "retry",
    "retry_dead",
    "get_job",
    "list_jobs",
    "throughput",
    "workers",
    "ping",
):
    setattr(MeteredEngine, _name, _plain(_name))


class MeteredBroker:
    """A ``ClaimBroker`` whose claims are timed from arrival to answer."""

    def __init__(self, broker: Any, metrics: Metrics) -> None:
        self.inner = broker
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def claim(self, queue: str, count: int, block_ms: int, worker: str, ledger: Any) -> Any:
        started = time.perf_counter()
        jobs = await self.inner.claim(queue, count, block_ms, worker, ledger)
        waited = time.perf_counter() - started
        self.metrics.child(self.metrics.claim_wait, queue, "jobs" if jobs else "empty").observe(waited)
        return jobs
