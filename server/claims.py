"""Long-polling claims that hold no Redis connection while they wait, and lose no job when cancelled.

A claim first tries the engine at once. If nothing is ready and it may wait, it parks as a ``Waiter`` in its
queue's ``Line`` (an in-process FIFO) until it is rescheduled. One dispatcher task per line, started only
while the line has waiters, claims from Redis on behalf of the head waiter whenever the queue may have work:
after a "ready" notification (Redis pub/sub through ``hub.Hub``, so a submit through any process wakes waiters
everywhere), and
once a second as a safety net against a notification lost while the subscription reconnected. Thousands of
waiters therefore cost a few kilobytes each and no Redis connection at all.

Cancel safety rests on two rules:
  1. No request ever cancels an in-flight Redis command: every claim runs in a shielded scope (bounded by the
     store client's command timeout), so the coredis pool bugs around cancellation never trigger.
  2. Jobs claimed for a request are recorded in that request's ``Ledger`` in the same synchronous step that
     obtains them. Whatever then stops the request (client gone, timeout, shutdown) the ledger still holds
     the jobs until the response is handed to the transport; the HTTP layer releases undelivered jobs back
     to the queue at once (``Engine.release``), so none waits for ``claim_timeout``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import attrs
import trio

from starq.worker_kit.errors import QueueNotFound, StarqError

from .engine.engine import Engine
from .engine.models import Job
from .hub_part import HubPart

log = logging.getLogger("starq.claims")

# While waiters are parked, the dispatcher also claims this often without a notification.
SAFETY_POLL_SECONDS = 1.0
# A claim that finds nothing and will wait marks its queue in the store as waited on for this long; only then do
# submits (and other ways back to pending) publish "ready". The dispatcher renews the mark at every claim it
# makes for its waiters, at least once per SAFETY_POLL_SECONDS, so the mark outlives any parked claim with room
# for a slow store; after the last waiter it lapses on its own.
PARKED_MARK_MS = 10_000
# At most this many claims of one queue that may wait try the store at once when nobody is parked yet; later ones
# park at once and the dispatcher claims for them, head first. Without it a burst of thousands of long-polls on an
# empty queue (workers reconnecting) sends thousands of claims to the store together, which queue behind the pool's
# connections past the store timeout and are answered 503 store_unavailable instead of parking.
FIRST_TRIES = 16
# Releasing undelivered jobs must finish even when the request is cancelled; this bounds how long it may take.
RELEASE_TIMEOUT = 10.0


@attrs.define(eq=False)
class Ledger:
    """Jobs claimed for one request that have not reached its client yet."""

    queue: str = ""
    jobs: list[Job] = attrs.Factory(list)
    written: bool = False  # the answer carrying them was handed to the kernel
    # The context a parked claim waits in: the HTTP layer's, which its client hanging up cancels (it watches for
    # that only while a claim is parked: a claim answered at once needs no watch).
    waiting: Callable[[], AbstractAsyncContextManager[Any]] = nullcontext

    def take(self, queue: str, jobs: list[Job]) -> None:
        self.queue = queue
        self.jobs.extend(jobs)

    def delivered(self) -> None:
        self.jobs = []

    async def release_undelivered(self, engine: Engine) -> None:
        """Gives undelivered jobs back to the queue. Shielded and bounded: it runs while cancellation unwinds."""
        if not self.jobs:
            return
        jobs, self.jobs = self.jobs, []
        with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT):
            try:
                released = await engine.release_undelivered(self.queue, jobs)
                log.info("released %d undelivered job(s) of queue %s", released, self.queue)
            except StarqError as exc:
                # The leases still expire after claim_timeout, so the jobs are late, not lost.
                log.warning("could not release %d job(s) of queue %s: %s", len(jobs), self.queue, exc)


@attrs.define(eq=False)
class Waiter:
    """One parked claim. It is woken by rescheduling its task directly, not through a ``trio.Event``: an Event
    brings a ParkingLot and an OrderedDict along, three objects per parked claim for a one-shot wake-up that
    only ever has this one task to wake."""

    count: int
    worker: str
    ledger: Ledger
    task: trio.lowlevel.Task
    error: StarqError | None = None


@attrs.define(eq=False)
class Line:
    """The waiters of one queue in this process, in arrival order."""

    queue: str
    waiters: deque[Waiter] = attrs.Factory(deque)
    wake: trio.Event = attrs.Factory(trio.Event)
    generation: int = 0
    dispatching: bool = False
    trying: int = 0  # claims that may wait with their first try in flight
    failing: bool = False  # the last claim for its waiters failed (the store is away)
    limited_until: float = 0.0  # the queue's rate limit allows nothing before this (trio clock)


class ClaimBroker(HubPart):
    """Serves claims, parking the ones that wait; its nursery hosts the dispatchers (``hub.Hub`` runs it and tells
    it of ready queues). Its ``closed`` also ends other long-lived responses (the dashboard's live stream)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._lines: dict[str, Line] = {}

    @property
    def waiting(self) -> int:
        """How many claims are parked right now."""
        return sum(len(line.waiters) for line in self._lines.values())

    def close(self) -> None:
        """Shutdown: every parked claim is answered with no jobs now, and no new claim parks."""
        super().close()
        for line in self._lines.values():
            while line.waiters:
                trio.lowlevel.reschedule(line.waiters.popleft().task)
            line.wake.set()

    def notify_all(self) -> None:
        """Notifications may have been missed (the subscription reconnected): every line looks once."""
        for queue in list(self._lines):
            self.notify(queue)

    def notify(self, queue: str) -> None:
        """The queue may have ready jobs (or may have gone): let its dispatcher look."""
        line = self._lines.get(queue)
        if line is not None:
            line.generation += 1
            line.wake.set()

    async def claim(self, queue: str, count: int, block_ms: int, worker: str, ledger: Ledger) -> list[Job]:
        """Claims up to ``count`` jobs, waiting up to ``block_ms`` for at least one. The jobs are also recorded
        in ``ledger`` until the caller marks them delivered."""
        # The line exists before the first try, so a notification that arrives during it is not lost.
        line = self._lines.setdefault(queue, Line(queue))
        generation = line.generation
        waits = block_ms > 0 and not self._closed
        untried = False
        if not waits or (not line.waiters and line.trying < FIRST_TRIES):
            # Nobody is waiting ahead of this claim (or it will not wait): try at once.
            line.trying += waits
            try:
                jobs = await self._claim_now(queue, count, worker, ledger, parks=waits)
            except QueueNotFound:
                if not line.waiters and not line.dispatching:
                    del self._lines[queue]  # names of queues that do not exist must not pile up here
                raise
            finally:
                line.trying -= waits
            if jobs or block_ms <= 0 or self._closed:
                return jobs
        else:
            # Nobody has looked at the queue for this claim yet unless waiters are parked ahead of it (they
            # found it empty and the dispatcher serves them first).
            untried = not line.waiters
        waiter = Waiter(count=count, worker=worker, ledger=ledger, task=trio.lowlevel.current_task())
        async with ledger.waiting():
            await self._park(line, generation, untried, waiter, block_ms)
        if waiter.error is not None:
            raise waiter.error
        return ledger.jobs

    async def _park(self, line: Line, generation: int, untried: bool, waiter: Waiter, block_ms: int) -> None:
        """Waits in ``line`` until the dispatcher hands ``waiter`` its jobs, ``block_ms`` pass, or it is cancelled."""
        line.waiters.append(waiter)
        if line.generation != generation or untried:
            line.wake.set()  # jobs became ready while the first try was in flight, or there was no first try
        self._ensure_dispatcher(line)

        def leave(_raise_cancel) -> trio.lowlevel.Abort:
            # Timed out, or the request was cancelled (client gone, shutdown). This runs synchronously, at the
            # moment of the cancellation, so a parked waiter is always in its line and a waiter in the line is
            # always parked: whoever pops it may reschedule it, exactly once.
            line.waiters.remove(waiter)
            return trio.lowlevel.Abort.SUCCEEDED

        with trio.move_on_after(block_ms / 1000):
            await trio.lowlevel.wait_task_rescheduled(leave)

    async def _claim_now(self, queue: str, count: int, worker: str, ledger: Ledger, parks: bool) -> list[Job]:
        with trio.CancelScope(shield=True):
            claimed = await self._engine.claim(queue, count, worker, PARKED_MARK_MS if parks else 0)
        ledger.take(queue, claimed.jobs)
        if claimed.rate_limited_ms:
            self._line_limited(queue, claimed.rate_limited_ms)
        return claimed.jobs

    def _line_limited(self, queue: str, wait_ms: int) -> None:
        """The queue's rate limit allows no hand-out for wait_ms: its dispatcher tries again then, not before
        (the store said when; polling it sooner would find nothing)."""
        line = self._lines.get(queue)
        if line is not None:
            line.limited_until = trio.current_time() + wait_ms / 1000

    def _ensure_dispatcher(self, line: Line) -> None:
        if not line.dispatching:
            assert self._nursery is not None, "ClaimBroker.run() is not running"
            line.dispatching = True
            self._nursery.start_soon(self._dispatch, line)

    async def _dispatch(self, line: Line) -> None:
        try:
            while line.waiters and not self._closed:
                if line.limited_until > trio.current_time():
                    # Rate-limited: nothing can be handed out before then, whatever wakes the line.
                    await trio.sleep_until(line.limited_until)
                elif not line.wake.is_set():
                    with trio.move_on_after(SAFETY_POLL_SECONDS):
                        await line.wake.wait()
                line.wake = trio.Event()
                await self._serve_waiters(line)
        finally:
            line.dispatching = False

    async def _serve_waiters(self, line: Line) -> None:
        """Claims for waiters, head first, until one claim comes back empty."""
        while line.waiters and not self._closed:
            head = line.waiters[0]
            try:
                with trio.CancelScope(shield=True):
                    claimed = await self._engine.claim(line.queue, head.count, head.worker, PARKED_MARK_MS)
            except QueueNotFound as exc:
                self._fail_all(line, exc)  # the queue is gone: every waiter of the line gets that answer
                return
            except StarqError as exc:
                # The store is away: the waiters stay parked (each still ends at its own block_ms), and the next
                # notification or safety poll tries again, so they are served as soon as the store is back.
                if not line.failing:
                    log.warning("claims for waiters of queue %s failed (%s); they keep waiting", line.queue, exc)
                    line.failing = True
                return
            if line.failing:
                log.info("claims for waiters of queue %s work again", line.queue)
                line.failing = False
            jobs = claimed.jobs
            if claimed.rate_limited_ms:
                line.limited_until = trio.current_time() + claimed.rate_limited_ms / 1000
            if not jobs:
                return
            if line.waiters and line.waiters[0] is head:
                line.waiters.popleft()
                head.ledger.take(line.queue, jobs)
                trio.lowlevel.reschedule(head.task)
            else:
                # The head left (timed out, hung up) while the claim was in flight: the jobs go straight back.
                await Ledger(line.queue, jobs).release_undelivered(self._engine)

    @staticmethod
    def _fail_all(line: Line, error: StarqError) -> None:
        while line.waiters:
            waiter = line.waiters.popleft()
            waiter.error = error
            trio.lowlevel.reschedule(waiter.task)
