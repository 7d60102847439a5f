"""Clients waiting for a job's outcome (``GET …/jobs/{id}?wait_ms=N``), parked without a store connection.

A wait marks the job watched and reads it in one call (``Engine.watch_job``); from then on, the job finishing
(completed, dead-lettered or cancelled) is published on the "done" channel, from any server process, and the
hub hands that here. One read of the job then answers every waiter of that job. A waiter costs a small object
in a dict until then, like a parked claim.

A waiter is registered before its first read, so a job that finishes while that read is in flight is not
missed: the notification marks the waiter, which reads again instead of parking. Notifications lost while the
subscription reconnects are made up by ``recheck_all``. No request ever cancels an in-flight store command
(reads run shielded, bounded by the store client's timeout), as with claims.
"""

from __future__ import annotations

import logging

import attrs
import trio

from starq.worker_kit.errors import StarqError

from .engine.engine import Engine
from .engine.models import Job
from .hub_part import HubPart

log = logging.getLogger("starq.waits")

# Store reads of outcome waiters in flight at once, per process. Each read's store_timeout starts when it is
# sent: 10,000 waiters arriving together, each read sent at once, left the last replies queued behind the rest
# for longer than that (9,581 of 10,000 answered 503 on a loaded 2-core machine). Waiters queue here instead,
# where they can still leave, and each read is bounded by its own round trip. Enough to keep the store busy.
READS_IN_FLIGHT = 32


@attrs.define(eq=False)
class _Waiter:
    task: trio.lowlevel.Task | None = None  # set while parked
    job: Job | None = None  # the finished job, once it is known
    error: StarqError | None = None
    notified: bool = False  # the job finished (or may have) since the waiter registered


class OutcomeWaiters(HubPart):
    """Its nursery hosts one read per finished job with waiters; the hub calls ``notify`` for each "done" message."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._waiters: dict[tuple[str, str], list[_Waiter]] = {}
        self._reading: set[tuple[str, str]] = set()
        self._reads = trio.CapacityLimiter(READS_IN_FLIGHT)

    @property
    def waiting(self) -> int:
        """How many clients are waiting for an outcome right now."""
        return sum(1 for waiters in self._waiters.values() for w in waiters if w.task is not None)

    def close(self) -> None:
        """Shutdown: every waiter answers now with the job as it last read it."""
        super().close()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if waiter.task is not None:
                    trio.lowlevel.reschedule(waiter.task)
                    waiter.task = None

    def notify(self, message: str) -> None:
        """A watched job finished ("<queue> <job id>")."""
        queue, _, job_id = message.partition(" ")
        self._wake((queue, job_id))

    def recheck_all(self) -> None:
        """Notifications may have been missed: every awaited job is read again."""
        for key in list(self._waiters):
            self._wake(key)

    def _wake(self, key: tuple[str, str]) -> None:
        waiters = self._waiters.get(key)
        if not waiters:
            return
        for waiter in waiters:
            waiter.notified = True
        if key not in self._reading and self._nursery is not None:
            self._reading.add(key)
            self._nursery.start_soon(self._answer, key)

    async def _answer(self, key: tuple[str, str]) -> None:
        """Reads the job once and answers its parked waiters, if it has finished."""
        try:
            with trio.CancelScope(shield=True):
                async with self._reads:
                    job = await self._engine.get_job(*key)
        except StarqError as exc:
            if exc.status == 404:  # the job (or its queue) is gone: that is the answer
                error = exc
                self._hand(key, lambda w: setattr(w, "error", error))
            else:  # the store is away: the waiters read again when their time is up
                log.warning("could not read job %s of queue %s for its waiters: %s", key[1], key[0], exc)
            return
        finally:
            self._reading.discard(key)
        if job.finished:
            self._hand(key, lambda w: setattr(w, "job", job))

    def _hand(self, key: tuple[str, str], give) -> None:
        for waiter in self._waiters.get(key, ()):
            if waiter.task is not None:
                give(waiter)
                trio.lowlevel.reschedule(waiter.task)
                waiter.task = None

    async def wait(self, queue: str, job_id: str, wait_ms: int) -> Job:
        """The job once it has finished, or as it is after ``wait_ms``."""
        key = (queue, job_id)
        waiter = _Waiter()
        self._waiters.setdefault(key, []).append(waiter)
        try:
            async with self._reads:  # waiting for a turn can be cancelled; the read, once sent, cannot
                with trio.CancelScope(shield=True):
                    job = await self._engine.watch_job(queue, job_id)
                    if not job.finished and waiter.notified:
                        job = await self._engine.get_job(queue, job_id)
            if job.finished or wait_ms <= 0 or self._closed:
                return job
            waiter.task = trio.lowlevel.current_task()

            def abort(_raise_cancel) -> trio.lowlevel.Abort:
                waiter.task = None  # timed out, or the client left: nobody may reschedule it now
                return trio.lowlevel.Abort.SUCCEEDED

            with trio.move_on_after(wait_ms / 1000) as timer:
                await trio.lowlevel.wait_task_rescheduled(abort)
            if waiter.error is not None:
                raise waiter.error
            if waiter.job is not None:
                return waiter.job
            if timer.cancelled_caught:
                async with self._reads:
                    with trio.CancelScope(shield=True):
                        return await self._engine.get_job(queue, job_id)
            return job  # shutting down
        finally:
            waiters = self._waiters[key]
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[key]
