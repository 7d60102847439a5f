"""``Worker``: runs a handler over a queue, ``concurrency`` jobs at a time, and reports every outcome.

It runs under Trio and asyncio alike (anyio). One task group holds the claim loop and one task per job. A
``CapacityLimiter`` of ``concurrency`` tokens is the only measure of free capacity: the claim loop reserves every
free token, claims exactly that many jobs (long-poll), hands each job its token, and gives back the ones it could
not fill. A job's task runs the handler, keeps its lease alive past half the claim timeout, and reports the outcome
quoting its ``lease_id`` — so a worker that lost its lease (the job was reclaimed and handed to another worker) can
never overwrite the new holder's result.

Shutdown (``stop()``): stop claiming (the parked long-poll is cancelled; the server puts back any job it took for
it), let running jobs finish for up to ``grace`` seconds, then cancel the rest and ``release`` them: they return to
the queue now instead of after ``claim_timeout``, and the interrupted attempt does not count (their ``retries``
stay as they were). A server without ``release`` (an older Starq) gets ``fail`` with ``retry: true`` instead.

Cancelled jobs: a job cancelled while claimed (``DELETE .../jobs/{id}``) answers the next extend, progress report,
complete or fail with ``409 job_cancelled``. When a heartbeat or a progress report meets it, the job is stopped:
an async handler is cancelled; a sync handler's thread cannot be interrupted, so it is abandoned (it runs on until
it returns, keeping its thread slot, and its outcome is not reported; it may call
``anyio.from_thread.check_cancelled()`` to stop early, and a progress report it makes raises ``JobCancelled``).
Nothing is reported for a cancelled job; it is counted as ``cancelled``, as is a job whose report meets
``job_cancelled``.

Handlers get a ``RunningJob``: the claimed ``Job`` with a ``progress`` to call. A report goes through the worker
(``_progress``), which treats its answer as a heartbeat's: cancelled or lost, the job is stopped; the server away,
the report is skipped (progress is advice, and the lease is the heartbeat's to keep).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import attrs

from .backoff import Backoff
from .client import StarqClient
from .errors import (
    BadRequest,
    Conflict,
    JobCancelled,
    MethodNotAllowed,
    NotFound,
    ServerUnreachable,
    StarqError,
    StoreUnavailable,
    Unauthorized,
    UnexpectedResponse,
    ValidationFailed,
)
from .models import Job, RunningJob
from .outcomes import Outcome, outcome_of_error
from .protocol import MAX_CLAIM_COUNT

log = logging.getLogger("starq.worker")

# Pauses between claim attempts while the server is unreachable.
RECONNECT_BACKOFF = Backoff(0.5, 30.0)
# The error of a job given back at shutdown to a server that cannot release it (it fails it for a retry instead).
SHUTDOWN_ERROR = "worker shut down before the job finished"

# Errors after which trying again later can succeed: the server (or its store) is away for now.
_TRANSIENT = (ServerUnreachable, StoreUnavailable, UnexpectedResponse)
# Errors a claim cannot outlive: the worker is misconfigured.
_FATAL = (Unauthorized, BadRequest, ValidationFailed, MethodNotAllowed)

Handler = Callable[[RunningJob], Any]  # a function of a plain Job fits too


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@attrs.frozen
class WorkerStatistics:
    """A snapshot of what a worker has done so far.

    Attributes:
        claimed: jobs handed to this worker.
        completed: jobs it completed.
        retried: failed attempts the server will try again.
        dead: failed jobs the server dead-lettered.
        interrupted: jobs a shutdown stopped after the grace period, and gave back (released).
        lost: jobs whose outcome could not be recorded because the lease had moved on (expired and reclaimed).
        cancelled: jobs cancelled while this worker held them: stopped at a heartbeat, or refused at the report.
        running: jobs in hand now.
    """

    claimed: int
    completed: int
    retried: int
    dead: int
    interrupted: int
    lost: int
    cancelled: int
    running: int


@attrs.define(eq=False)  # compared and hashed by identity: the same job can come back to this worker
class _Running:
    """One job in this worker's hands (one claim of it)."""

    job: Job
    scope: anyio.CancelScope | None = None
    interrupted: bool = False  # shutdown asked it to stop
    lease_lost: bool = False  # the server no longer knows our lease: someone else holds the job
    cancelled: bool = False  # the job was cancelled while we held it: stop, report nothing
    in_thread: bool = False  # a sync handler is running in its thread
    holding: bool = False  # waiting out a Retry(delay=...)

    def interrupt(self) -> None:
        self.interrupted = True
        if self.scope is not None:
            self.scope.cancel()


class Worker:
    """Runs ``handler`` over the jobs of ``queue``.

    Args:
        client: the ``StarqClient`` to talk through (the worker does not close it).
        queue: the queue to claim from.
        handler: called with each job (a ``RunningJob``: the ``Job``, and its ``progress`` to report to); an
            ``async def`` runs in the worker's task group, a plain function in a thread. Its return value (any JSON
            value) completes the job; ``Retry``, ``Permanent`` or any other exception fails it (``Permanent``
            dead-letters it at once).
        concurrency: jobs run at once.
        name: the worker name the server shows (default ``host-pid``).
        block_ms: how long each claim waits for a job (long-poll, at most 60,000).
        grace: seconds running jobs get to finish after ``stop()`` before they are cancelled and released.
        report_timeout: seconds the last reports get after the grace period, should the server be away.
        backoff: pauses between attempts while the server is unreachable.
    """

    def __init__(
        self,
        client: StarqClient,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        name: str | None = None,
        block_ms: int = 30_000,
        grace: float = 30.0,
        report_timeout: float = 10.0,
        backoff: Backoff = RECONNECT_BACKOFF,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.name = name or default_worker_name()
        self.block_ms = block_ms
        self.grace = grace
        self.report_timeout = report_timeout
        self.backoff = backoff
        self._is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._threads = anyio.CapacityLimiter(concurrency)
        self._running: set[_Running] = set()
        self._stopping = anyio.Event()
        self._drained = anyio.Event()
        self._claim_scope: anyio.CancelScope | None = None
        self._fatal: StarqError | None = None
        self._counts = dict.fromkeys(("claimed", "completed", "retried", "dead", "interrupted", "lost", "cancelled"), 0)

    # -- public ---------------------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(**self._counts, running=len(self._running))

    def stop(self) -> None:
        """Begins a graceful shutdown: claim no more, let running jobs finish (up to ``grace``)."""
        if self._stopping.is_set():
            return
        log.info("worker %s stopping: %d job(s) running, %.0f s grace", self.name, len(self._running), self.grace)
        self._stopping.set()
        if self._claim_scope is not None:
            self._claim_scope.cancel()
        for run in self._running:
            if run.holding:
                run.interrupt()
        self._check_drained()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Claims and runs jobs until ``stop()`` is called and the shutdown has finished.

        Cancelling ``run`` instead ends everything at once: jobs in hand are neither finished nor reported, and
        come back to the queue when their leases expire.

        Raises:
            Unauthorized: the API key is refused (and other errors no retry can fix).
        """
        log.info("worker %s: queue %r, concurrency %d", self.name, self.queue, self.concurrency)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._claim_forever, tasks)
            task_status.started()
            await self._stopping.wait()
            with anyio.move_on_after(self.grace):
                await self._drained.wait()
            if self._running:
                log.warning(
                    "grace period over: cancelling %d job(s) and returning them to the queue", len(self._running)
                )
                for run in list(self._running):
                    run.interrupt()
                with anyio.move_on_after(self.report_timeout):
                    await self._drained.wait()
                if self._running:
                    log.error(
                        "could not report %d job(s); they return to the queue when their leases expire",
                        len(self._running),
                    )
            tasks.cancel_scope.cancel()
        log.info("worker %s stopped", self.name)
        if self._fatal is not None:
            raise self._fatal

    async def run_until_signal(self) -> bool:
        """``run()`` with SIGINT/SIGTERM handling: the first signal stops gracefully, a second ends at once.

        Returns:
            True after a graceful stop, False when a second signal cut it short.
        """
        graceful = True
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tasks:

                async def watch() -> None:
                    nonlocal graceful
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        if not self.stopping:
                            log.warning("%s: finishing running jobs (send it again to exit at once)", name)
                            self.stop()
                        else:
                            log.warning("second %s: exiting now", name)
                            graceful = False
                            tasks.cancel_scope.cancel()

                tasks.start_soon(watch)
                await self.run()
                tasks.cancel_scope.cancel()
        return graceful

    # -- claiming -------------------------------------------------------------------------------------------

    async def _reserve(self) -> list[object]:
        """Waits for one free slot, then takes every other free one (up to the server's claim limit)."""
        first = object()
        await self._limiter.acquire_on_behalf_of(first)
        slots = [first]
        while len(slots) < MAX_CLAIM_COUNT:
            slot = object()
            try:
                self._limiter.acquire_on_behalf_of_nowait(slot)
            except anyio.WouldBlock:
                break
            slots.append(slot)
        return slots

    async def _claim_forever(self, tasks: anyio.abc.TaskGroup) -> None:
        failures = 0
        while not self.stopping:
            slots = await self._reserve()
            jobs: list[Job] = []
            try:
                with anyio.CancelScope() as self._claim_scope:
                    if self.stopping:
                        self._claim_scope.cancel()
                    jobs = await self.client.claim(
                        self.queue, count=len(slots), block_ms=self.block_ms, worker=self.name
                    )
            except _FATAL as exc:
                log.error("claim refused (%s): stopping", exc.detail)
                self._fatal = exc
                self.stop()
            except StarqError as exc:
                pause = self.backoff.delay(failures)
                failures += 1
                what = "server unreachable" if isinstance(exc, _TRANSIENT) else "claim refused"
                log.warning("%s (%s): retrying in %.1f s (attempt %d)", what, exc.detail, pause, failures)
                with anyio.move_on_after(pause):
                    await self._stopping.wait()
            else:
                if failures:
                    log.info("server is back after %d failed attempt(s): claiming again", failures)
                    failures = 0
            finally:
                self._claim_scope = None
                for slot in slots[len(jobs) :]:
                    self._limiter.release_on_behalf_of(slot)
            received = anyio.current_time()
            for job, slot in zip(jobs, slots):
                self._counts["claimed"] += 1
                run = _Running(job)
                self._running.add(run)
                tasks.start_soon(self._run_job, run, slot, received)

    # -- one job --------------------------------------------------------------------------------------------

    async def _run_job(self, run: _Running, slot: object, received: float) -> None:
        try:
            async with anyio.create_task_group() as keeper:
                keeper.start_soon(self._keep_lease, run, received)
                try:
                    outcome = await self._execute(run)
                finally:
                    self._limiter.release_on_behalf_of(slot)
                if outcome.delay and not (run.lease_lost or run.interrupted or run.cancelled):
                    await self._hold(run, outcome.delay)
                await self._report(run, outcome)
                keeper.cancel_scope.cancel()
        finally:
            self._running.discard(run)
            self._check_drained()

    async def _execute(self, run: _Running) -> Outcome:
        job = RunningJob.of(run.job, functools.partial(self._progress, run))
        with anyio.CancelScope() as run.scope:
            if run.interrupted:
                run.scope.cancel()
            try:
                if self._is_async:
                    value = await self.handler(job)
                else:
                    run.in_thread = True
                    try:
                        value = await anyio.to_thread.run_sync(
                            self.handler, job, limiter=self._threads, abandon_on_cancel=True
                        )
                    finally:
                        run.in_thread = False
                json.dumps(value)  # a result the server cannot store is the handler's error
            except Exception as exc:
                # Logged once the server has said what became of the job (see _report).
                return outcome_of_error(exc)
            return Outcome("complete", result=value)
        # Only a cancelled scope gets here: the job was cancelled, the lease was lost, or shutdown ran out of grace.
        if run.cancelled:
            return Outcome("cancelled")
        if run.lease_lost:
            return Outcome("retry", error="lease lost while running")
        self._counts["interrupted"] += 1
        return Outcome("release")

    async def _hold(self, run: _Running, delay: float) -> None:
        """Keeps a ``Retry(delay=...)`` job leased for ``delay`` seconds before it is failed (cut short by
        shutdown). The job holds no concurrency slot meanwhile."""
        run.holding = True
        with anyio.CancelScope() as run.scope:
            if self.stopping:
                run.scope.cancel()
            await anyio.sleep(delay)
        run.holding = False

    async def _keep_lease(self, run: _Running, received: float) -> None:
        """Extends the lease each time half of it has passed, for as long as the job is in hand."""
        job = run.job
        length = job.lease_seconds
        if not length:
            return
        next_at = received + length / 2
        while True:
            await anyio.sleep_until(next_at)
            try:
                await self.client.extend(self.queue, job.id, lease_id=job.lease_id)
            except JobCancelled:
                self._stop_cancelled(run)
                return
            except (Conflict, NotFound) as exc:
                self._drop_lost(run, exc.detail)
                return
            except StarqError as exc:
                # Try again soon: the lease is still ours until it expires.
                log.warning("job %s: could not extend its lease (%s)", job.id, exc.detail)
                next_at = anyio.current_time() + min(length / 10, 5.0)
            else:
                next_at = anyio.current_time() + length / 2

    async def _progress(self, run: _Running, value: Any) -> None:
        """A handler's progress report (``RunningJob.progress``). It runs in the handler's task, or, for a sync
        handler, in a task of its own that ``anyio.from_thread.run`` started for the handler's thread."""
        job = run.job
        try:
            await self.client.progress(self.queue, job.id, value, lease_id=job.lease_id)
        except JobCancelled:
            self._stop_cancelled(run)
            await anyio.lowlevel.checkpoint()  # an async handler's scope is cancelled: it stops here
            raise  # a sync handler's thread (abandoned now) gets it from anyio.from_thread.run, and can stop too
        except (Conflict, NotFound) as exc:
            self._drop_lost(run, exc.detail)
            await anyio.lowlevel.checkpoint()
            raise
        except _TRANSIENT as exc:
            log.warning("job %s: progress not reported (%s); the job goes on", job.id, exc.detail)

    def _stop_cancelled(self, run: _Running) -> None:
        """The job was cancelled while we held it: stop its handler (a thread is abandoned), report nothing."""
        if run.cancelled:
            return
        if not run.in_thread:
            log.info("job %s was cancelled: stopping it", run.job.id)
        else:
            log.warning(
                "job %s was cancelled: its handler's thread is abandoned (it runs on until it returns; "
                "its outcome is not reported)",
                run.job.id,
            )
        run.cancelled = True
        if run.scope is not None:
            run.scope.cancel()

    def _drop_lost(self, run: _Running, detail: str) -> None:
        """Our lease is gone (the job was reclaimed and is someone else's): stop an async handler, report nothing."""
        if run.lease_lost:
            return
        log.warning("job %s: lease lost (%s); dropping it", run.job.id, detail)
        run.lease_lost = True
        if self._is_async and run.scope is not None:
            run.scope.cancel()  # the work is someone else's now

    async def _report(self, run: _Running, outcome: Outcome) -> None:
        """Sends the outcome, retrying while the server is away; a lost lease means it is no longer ours, a
        cancelled job is not reported at all."""
        job = run.job
        failures = 0
        while True:
            if run.cancelled:
                self._counts["cancelled"] += 1
                return
            if run.lease_lost:
                self._counts["lost"] += 1
                log.warning("job %s: not reporting %s, its lease was lost", job.id, outcome.kind)
                return
            try:
                if outcome.kind == "complete":
                    await self.client.complete(self.queue, job.id, outcome.result, lease_id=job.lease_id)
                    self._counts["completed"] += 1
                elif outcome.kind == "release":
                    status = await self.client.release(self.queue, job.id, lease_id=job.lease_id)
                    log.info("job %s given back unfinished (now %s)", job.id, status)
                else:
                    answer = await self.client.fail(
                        self.queue, job.id, outcome.error, lease_id=job.lease_id, retry=outcome.retry
                    )
                    # What the server did, not what was asked: a retry asked for on the job's last attempt
                    # dead-letters it (status failed); pending or scheduled means it will run again.
                    dead = answer.status == "failed"
                    self._counts["dead" if dead else "retried"] += 1
                    # The whole error: its line, then the traceback of the handler's own frames (outcomes.py).
                    log.info(
                        "job %s failed (%s): %s", job.id, "dead-lettered" if dead else "will be retried", outcome.error
                    )
                return
            except JobCancelled:
                self._counts["cancelled"] += 1
                log.info("job %s was cancelled while it ran: its %s is not recorded", job.id, outcome.kind)
                return
            except (Conflict, NotFound) as exc:
                if outcome.kind == "release" and type(exc) is NotFound:
                    # The path is unknown (not the job): a server without release. Give it back as a failure.
                    log.info("job %s: the server cannot release jobs; failing it for a retry instead", job.id)
                    outcome = Outcome("retry", error=SHUTDOWN_ERROR)
                    continue
                self._counts["lost"] += 1
                log.warning("job %s: %s not recorded: %s", job.id, outcome.kind, exc.detail)
                return
            except _TRANSIENT as exc:
                pause = self.backoff.delay(failures)
                failures += 1
                # The claim loop already logs each outage; one line per job is enough here.
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "job %s: cannot report %s (%s); retrying until the server answers",
                    job.id,
                    outcome.kind,
                    exc.detail,
                )
                await anyio.sleep(pause)
            except StarqError as exc:
                # The server refused the report itself (a result too large, say): record that as the failure.
                log.warning("job %s: %s refused (%s)", job.id, outcome.kind, exc.detail)
                outcome = Outcome("retry", error=f"the worker's report was refused: {exc.detail}")

    def _check_drained(self) -> None:
        if self.stopping and not self._running:
            self._drained.set()


__all__ = ["Worker", "WorkerStatistics", "default_worker_name"]
