"""Prometheus metrics for one server process, served at ``GET /metrics`` by ``prometheus-client``.

Three kinds of figures, each gathered where it is cheapest and exact:

* Job counters (submitted, claimed, completed, failed, retried, dead-lettered, reclaimed, released) count
  what *this process* did, read from the engine's own replies (``Metrics`` is the engine's ``Observer``); the
  reclaimed count comes from the maintenance loop's ``tick``. Sum them over every instance (``sum by (queue)``).
* Queue depth by status, waiting long-polls and whether the store answers are read at scrape time
  (``Metrics.refresh``), so they are the store's truth, the same on every instance.
* Latencies: HTTP requests by route and status, store round trips by operation, how long claims waited, how
  long jobs ran and how long they queued.

Every metric lives in a registry of its own (never prometheus-client's global one), so several apps in one
process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
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

from .engine.models import STATUSES, Job
from .engine.observer import Observer

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

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


class Metrics(Observer):
    """Every metric of one server process, in its own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def metric(kind: Any, name: str, what: str, labels: Sequence[str] = (), **options: Any) -> Any:
            return kind(name, what, labels, registry=registry, **options)

        self.jobs: dict[str, Counter] = {
            name: metric(Counter, f"starq_jobs_{name}", f"Jobs {what} through this process.", ["queue"])
            for name, what in (
                ("submitted", "submitted (skipped duplicates excluded)"),
                ("claimed", "handed out to workers"),
                ("completed", "reported completed"),
                ("failed", "reported failed (each failed attempt; expired leases excluded)"),
                ("retried", "put back in line after a failed attempt a worker reported"),
                ("dead_lettered", "dead-lettered (status failed) by a reported failure"),
                ("reclaimed", "whose lease expired, reclaimed (retried or dead-lettered) by the maintenance loop"),
                ("released", "returned to the queue because the claiming client never got them"),
            )
        }  # fmt: skip
        self.depth = metric(
            Gauge, "starq_queue_jobs",
            f"Jobs in a queue by status ({', '.join(STATUSES)}), read from the store at scrape time.",
            ["queue", "status"],
        )  # fmt: skip
        self.paused = metric(Gauge, "starq_queue_paused", "1 when the queue is paused.", ["queue"])
        self.held_by_key = metric(
            Gauge, "starq_queue_held_by_key",
            "Pending jobs waiting for their key's turn (key_concurrency), at scrape time.", ["queue"],
        )  # fmt: skip
        self.oldest_pending = metric(
            Gauge, "starq_queue_oldest_pending_seconds", "How long the oldest pending job of a queue has waited since "
            "it was submitted (0: none pending), at scrape time: the queue's latency.", ["queue"],
        )  # fmt: skip
        self.schedule_runs = metric(
            Counter, "starq_schedule_runs", "Schedule runs (jobs a schedule submitted) made by this process.",
            ["queue", "schedule"],
        )  # fmt: skip
        self.maintenance_lag_seconds = metric(
            Gauge, "starq_maintenance_lag_seconds", "How long the oldest due item of a kind (promote: a scheduled "
            "job, reclaim: an expired lease, expire: a record past its retention) still waited after this process's "
            "last maintenance tick of the queue (0: caught up).", ["queue", "kind"],
        )  # fmt: skip
        self.limited_claims = metric(
            Counter, "starq_claims_limited", "Claims that got fewer jobs than they asked for because of the queue's "
            "rate limit (limit=rate) or its concurrency (limit=concurrency).", ["queue", "limit"],
        )  # fmt: skip
        self.waiting = metric(Gauge, "starq_claims_waiting", "Long-poll claims parked in this process.")
        self.outcome_waiters = metric(
            Gauge, "starq_outcome_waiters", "Requests waiting for a job's outcome (wait_ms) here."
        )
        self.event_readers = metric(Gauge, "starq_event_readers", "Open event streams in this process.")
        self.store_up = metric(Gauge, "starq_store_up", "1 when the store answered the last scrape.")
        self.claim_wait = metric(
            Histogram, "starq_claim_wait_seconds",
            "How long a claim request waited before it was answered (outcome: jobs or empty).",
            ["queue", "outcome"], buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.job_queued = metric(
            Histogram, "starq_job_queued_seconds",
            "Time from submission to a job's first claim (store clock; a requested delay included).",
            ["queue"], buckets=RUN_BUCKETS,
        )  # fmt: skip
        self.job_run = metric(
            Histogram, "starq_job_run_seconds",
            "Time from claim to complete/fail, for jobs claimed and reported through this process (with several "
            "instances behind a balancer, a sample).", ["queue", "outcome"], buckets=RUN_BUCKETS,
        )  # fmt: skip
        self.store_op = metric(
            Histogram, "starq_store_operation_seconds", "Round-trip time of engine operations against the store.",
            ["operation"], buckets=STORE_BUCKETS,
        )  # fmt: skip
        self.store_errors = metric(
            Counter, "starq_store_errors", "Engine operations that failed because the store could not answer.",
            ["operation"],
        )  # fmt: skip
        self.http_requests = metric(
            Counter, "starq_http_requests",
            "HTTP requests answered, by route template (as in the OpenAPI document; a dashboard page by its rule; "
            "unmatched for unknown paths), method and status.", ["method", "route", "status"],
        )  # fmt: skip
        self.http_latency = metric(
            Histogram, "starq_http_request_duration_seconds",
            "HTTP request latency (long-poll claims include their wait).", ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
        )  # fmt: skip
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

    def count(self, kind: str, queue: str, n: int = 1) -> None:
        """Adds ``n`` to the job counter ``kind`` (one of ``self.jobs``) of ``queue``."""
        if n:
            self.child(self.jobs[kind], queue).inc(n)

    def claim_waited(self, queue: str, got_jobs: bool, seconds: float) -> None:
        """A claim request was answered after ``seconds`` (its long-poll included)."""
        self.child(self.claim_wait, queue, "jobs" if got_jobs else "empty").observe(seconds)

    # -- what the engine reports (engine.observer.Observer) -------------------------------------------------

    def store_call(self, operation: str, seconds: float, unavailable: bool) -> None:
        self.child(self.store_op, operation).observe(seconds)
        if unavailable:
            self.child(self.store_errors, operation).inc()

    def submitted(self, queue: str, fresh: int) -> None:
        self.count("submitted", queue, fresh)

    def claimed(self, queue: str, jobs: Sequence[Job]) -> None:
        self.count("claimed", queue, len(jobs))
        now = time.monotonic()
        queued = self.child(self.job_queued, queue)
        # The jobs of one claim share their claim time, and jobs submitted together their creation time: each
        # distinct time is read once (a claim of 50 read 100 ISO times and looked its metric up 50 times).
        times: dict[str, datetime | None] = {}
        for job in jobs:
            self._claimed_at[(queue, job.id)] = now
            if not job.retries:
                waited = _seconds_between(_read_time(times, job.created_at), _read_time(times, job.claimed_at))
                if waited is not None:
                    queued.observe(waited)
        while len(self._claimed_at) > MAX_TRACKED_CLAIMS:
            self._claimed_at.popitem(last=False)

    def released(self, queue: str, jobs: Sequence[Job], released: int) -> None:
        self.count("released", queue, released)
        for job in jobs:
            self._claimed_at.pop((queue, job.id), None)

    def completed(self, queue: str, job_ids: Sequence[str]) -> None:
        self.count("completed", queue, len(job_ids))  # one increment a batch: each takes the client's lock
        self._jobs_ended(queue, job_ids, "completed")

    def failed(self, queue: str, job_id: str, status: str) -> None:
        self.count("failed", queue)
        self._jobs_ended(queue, (job_id,), "failed")
        self.count("dead_lettered" if status == "failed" else "retried", queue)

    def reclaimed(self, queue: str, count: int) -> None:
        self.count("reclaimed", queue, count)

    def limited(self, queue: str, rate: bool, concurrency: bool) -> None:
        if rate:
            self.child(self.limited_claims, queue, "rate").inc()
        if concurrency:
            self.child(self.limited_claims, queue, "concurrency").inc()

    def maintenance_lag(self, queue: str, lag_ms: dict[str, int]) -> None:
        for kind, ms in lag_ms.items():
            self.child(self.maintenance_lag_seconds, queue, kind).set(ms / 1000)

    def schedule_ran(self, queue: str, name: str) -> None:
        self.child(self.schedule_runs, queue, name).inc()

    def _jobs_ended(self, queue: str, job_ids: Sequence[str], outcome: str) -> None:
        """Observes each job's run time; the histogram is looked up once per call (an ack may end 50 jobs)."""
        run = None
        now = time.monotonic()
        for job_id in job_ids:
            started = self._claimed_at.pop((queue, job_id), None)
            if started is not None:
                run = run or self.child(self.job_run, queue, outcome)
                run.observe(now - started)

    # -- scrape ---------------------------------------------------------------------------------------------

    async def refresh(self, engine: Any, hub: Any) -> None:
        """Reads queue depths from the store (one round trip per queue), then sets every gauge at once."""
        self.waiting.set(hub.claims.waiting)
        self.outcome_waiters.set(hub.outcomes.waiting)
        self.event_readers.set(hub.events.readers)
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
        self.held_by_key.clear()
        self.oldest_pending.clear()
        now = datetime.now(UTC)
        for info in infos:
            oldest = info.oldest_pending_at
            waited = (now - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).total_seconds() if oldest else 0
            self.oldest_pending.labels(info.name).set(max(waited, 0.0))
            for status in STATUSES:
                self.depth.labels(info.name, status).set(info.counts.get(status, 0))
            self.paused.labels(info.name).set(1 if info.paused else 0)
            self.held_by_key.labels(info.name).set(info.held_by_key)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def declared(self) -> list[Any]:
        """Every metric, in the order declared (the one place their names, types, labels and meanings are)."""
        found: list[Any] = []
        for value in vars(self).values():
            for metric in value.values() if isinstance(value, dict) else (value,):
                if isinstance(metric, Counter | Gauge | Histogram):
                    found.append(metric)
        return found


def metrics_table() -> str:
    """The table of docs/deployment.md, made from the declarations (a test compares it with the file)."""
    rows = ["| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
    for metric in Metrics().declared():
        name = metric._name + ("_total" if metric._type == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in metric._labelnames)
        rows.append(f"| `{name}` | {metric._type} | {labels} | {metric._documentation} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(metrics_table())


def _read_time(seen: dict[str, datetime | None], text: str) -> datetime | None:
    """An ISO time, read once per ``seen`` (None when it is not one)."""
    try:
        return seen[text]
    except KeyError:
        pass
    try:
        found: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        found = None
    seen[text] = found
    return found


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)
