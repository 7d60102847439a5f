"""What the client hands back: small frozen records read from the server's JSON.

Each keeps the server's whole object in ``raw`` too, so fields added by a newer server are never lost (the CLI's
``--json`` output prints ``raw`` unchanged).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Generator, Mapping
from datetime import datetime
from typing import Any, Self

import anyio.from_thread
import attrs

from .protocol import FINISHED_STATUSES, QUEUE_DEFAULTS


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time from the API as an aware datetime; ``None`` for ``""``."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class _FromJson:
    """The ``from_json`` of a record that keeps the server's whole object in ``raw``."""

    __slots__ = ()  # the attrs records are slotted: no instance dict from here either

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The record of a JSON object of the server's: the fields it knows, and all of ``data`` in ``raw``."""
        # attrs classes only (every subclass is one), which the type checker cannot see from here.
        known = attrs.fields_dict(cls).keys() - {"raw"}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known}, raw=data)  # type: ignore[call-arg]


@attrs.frozen
class Job(_FromJson):
    """A job as the server shows it. While claimed, ``lease_id`` is what to quote when reporting."""

    id: str
    queue: str
    status: str
    payload: Any
    result: Any = None
    error: str = ""
    retries: int = 0
    priority: int = 0
    created_at: str = ""
    claimed_at: str = ""
    completed_at: str = ""
    run_at: str = ""
    lease_id: str = ""
    lease_expires_at: str = ""
    worker: str = ""
    key: str = ""
    unique_key: str = ""
    unique_for: int | None = None
    timeout: int | None = None
    max_retries: int | None = None
    tags: list[str] = attrs.field(factory=list)
    schedule: str = ""
    depends_on: list[str] = attrs.field(factory=list)
    on_dependency_failure: str = ""
    batch_id: str = ""
    progress: Any = None
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def finished(self) -> bool:
        """Completed, failed (dead-lettered) or cancelled: a status it does not leave by itself."""
        return self.status in FINISHED_STATUSES

    @property
    def lease_seconds(self) -> float | None:
        """How long the lease ran when it was granted (the queue's ``claim_timeout``), from server times."""
        start, end = parse_time(self.claimed_at), parse_time(self.lease_expires_at)
        if start is None or end is None:
            return None
        return max((end - start).total_seconds(), 0.0)


ProgressReporter = Callable[[Any], Awaitable[None]]


@attrs.define(eq=False)
class Progress:
    """``job.progress`` of a running job: call it to report how far the job got.

    ``last`` is the latest value reported: by this run, or, until it reports, before it (a job tried again can
    resume from what its earlier attempt reported; ``None`` if none did).
    """

    last: Any
    _reporter: ProgressReporter = attrs.field(repr=False)

    def __call__(self, value: float | Mapping[str, Any]) -> Awaitable[None]:
        """Reports a number, or a JSON object of at most 64 KiB (``protocol.MAX_PROGRESS_BYTES``).

        In an ``async def`` handler, ``await job.progress(value)``. In a plain ``def`` one (it runs in a thread the
        worker started), ``job.progress(value)`` sends the report through the worker's loop and returns once it is
        done (what it returns needs no ``await`` there).

        The job shows the latest value (its ``progress``), and a queue with events on logs each report. A job
        cancelled meanwhile is stopped here, as at a heartbeat: an async handler is cancelled (``trio.Cancelled``,
        ``asyncio.CancelledError``), a sync one gets ``JobCancelled``. One whose lease was lost is dropped the same
        way (cancelled, or in a thread ``LeaseLost``/``NotClaimed``/``NotFound``). A report the server could not be
        reached for is logged and skipped: progress is advice, and the job goes on.
        """
        if _in_event_loop():
            return self._send(value)
        anyio.from_thread.run(self._send, value)  # a sync handler's thread: the report runs in the worker's loop
        return _Done()

    async def _send(self, value: float | Mapping[str, Any]) -> None:
        await self._reporter(value)
        self.last = value


def _in_event_loop() -> bool:
    """Whether this runs in an event loop's thread (Trio's or asyncio's) rather than in a handler's thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")  # imported already if Trio runs this thread; not imported for nothing
        return trio is not None and trio.lowlevel.in_trio_task()
    return True


class _Done:
    """What ``Progress`` gives a sync handler: the report is already sent, and awaiting this does nothing."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


@attrs.frozen
class RunningJob(Job):
    """The job a ``Worker`` hands its handler: a ``Job`` whose ``progress`` reports how far it got.

    ``await job.progress(value)`` in an ``async def`` handler, ``job.progress(value)`` in a plain ``def`` one. The
    value the job had when it was claimed is ``job.progress.last``.
    """

    progress: Progress = attrs.field(kw_only=True)

    @classmethod
    def of(cls, job: Job, reporter: ProgressReporter) -> RunningJob:
        fields = {f.name: getattr(job, f.name) for f in attrs.fields(Job) if f.name != "progress"}
        return cls(**fields, progress=Progress(job.progress, reporter))


@attrs.frozen
class QueueInfo(_FromJson):
    """A queue's settings and its job counts."""

    name: str
    # The settings, defaulting as the server does (protocol.QUEUE_SETTINGS).
    description: str = QUEUE_DEFAULTS["description"]
    max_retries: int = QUEUE_DEFAULTS["max_retries"]
    claim_timeout: int = QUEUE_DEFAULTS["claim_timeout"]
    dedupe: bool = QUEUE_DEFAULTS["dedupe"]
    retry_delay: float = QUEUE_DEFAULTS["retry_delay"]
    retry_delay_max: float = QUEUE_DEFAULTS["retry_delay_max"]
    retention: int = QUEUE_DEFAULTS["retention"]
    concurrency: int = QUEUE_DEFAULTS["concurrency"]
    key_concurrency: int = QUEUE_DEFAULTS["key_concurrency"]
    rate_limit: dict[str, int] | None = QUEUE_DEFAULTS["rate_limit"]
    events: bool = QUEUE_DEFAULTS["events"]
    events_max: int = QUEUE_DEFAULTS["events_max"]
    waiting: int = 0
    pending: int = 0
    scheduled: int = 0
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    paused: bool = False
    created_at: str = ""
    oldest_pending_at: str = ""
    workers: int = 0
    held_by_key: int = 0
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen
class Schedule(_FromJson):
    """A schedule of a queue: a cron expression or an interval (``every`` seconds) that submits a job each time it
    is due. Its job options are ``None`` when it does not set them (its jobs then get the queue's defaults).
    ``next_run_at`` is ``""`` while it is paused; ``last_run_at`` and ``last_job_id`` are ``""`` before its
    first run."""

    name: str
    queue: str
    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    payload: dict[str, Any] = attrs.field(factory=dict)
    paused: bool = False
    priority: int = 0
    key: str | None = None
    unique_key: str | None = None
    unique_for: int | None = None
    timeout: int | None = None
    max_retries: int | None = None
    tags: list[str] | None = None
    next_run_at: str = ""
    last_run_at: str = ""
    last_job_id: str = ""
    created_at: str = ""
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def when(self) -> str:
        """The timing in words: the cron expression (with its zone unless UTC), or ``every N s``."""
        if self.cron is not None:
            return self.cron if self.timezone == "UTC" else f"{self.cron} ({self.timezone})"
        return f"every {self.every} s" if self.every is not None else ""


@attrs.frozen
class Submitted:
    """The answer to a submit: the new jobs, how many were created or skipped by dedupe, and the batch they form
    (``batch_id``, ``""`` unless the submit asked for one)."""

    jobs: list[Job]
    submitted: int
    skipped: int
    batch_id: str = ""


@attrs.frozen
class Batch(_FromJson):
    """A batch of jobs submitted together: how many have finished which way, and its callback job (``None``
    without a callback). ``finished_at`` is ``""`` until every job has finished."""

    id: str
    total: int
    pending: int
    completed: int
    failed: int
    cancelled: int
    finished: bool
    callback_job_id: str | None = None
    created_at: str = ""
    finished_at: str = ""
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen
class Event:
    """One event of a queue's event stream.

    ``kind`` is one of ``protocol.EVENT_KINDS`` (what happened to the job ``data["job_id"]``; ``data`` also has
    ``status``, ``at``, ``queue``, ``event`` and, by kind, ``error``, ``retries``, ``worker``, ``lease_id``,
    ``progress``), with ``id`` its number in the queue's log; or ``"dropped"`` (``id`` None): the log's cap
    removed events this reader had not seen, ``data`` = ``{"queue", "after", "oldest", "detail"}``: the events
    numbered after ``after`` and before ``oldest`` are lost to it.
    """

    id: int | None
    kind: str
    data: dict[str, Any]


@attrs.frozen
class JobPage:
    """One page of a job listing; pass ``cursor`` to get the next while ``has_more``."""

    jobs: list[Job]
    cursor: str
    has_more: bool


@attrs.frozen
class FailOutcome:
    """The answer to a fail: the job's new status (pending, scheduled or failed) and its retries so far."""

    status: str
    job_id: str
    retries: int


@attrs.frozen
class AckResult:
    """The per-job answers to a batch ack; ``results`` keep the server's order (completes, then fails)."""

    results: list[dict[str, Any]]
    completed: int
    failed: int
    errors: int


@attrs.frozen
class BulkResult:
    """The answer to a bulk action: one result per id, in the order given (``{"job_id", "ok": True, "status"}``
    or ``{"job_id", "ok": False, "error", "detail"}``), and how many items were done and refused."""

    results: list[dict[str, Any]]
    ok: int
    errors: int
