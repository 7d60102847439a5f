"""The queue engine: the only code that knows Redis keys and calls the Lua library.

Each public method is one state transition or one read, done in one round trip to Redis (one FCALL, or one
pipeline). Methods raise the exceptions of ``errors``; they never return Redis replies to callers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import coredis.exceptions as redis_errors
import orjson
import trio

from starq.worker_kit.errors import (
    BatchNotFound,
    InvalidState,
    JobCancelled,
    JobNotFound,
    LeaseLost,
    NotClaimed,
    QueueExists,
    QueueNotFound,
    ScheduleExists,
    ScheduleNotFound,
    StarqError,
    StoreUnavailable,
    TooManyQueues,
    UnknownDependency,
)
from starq.worker_kit.protocol import BULK_ACTIONS

from . import keys
from .durability import DURABLE_REPLICAS, DURABLE_TIMEOUT_MS, check_durable, confirm_on_disk, confirm_replicated
from .library import LIBRARY
from .models import (
    Batch,
    Event,
    EventPage,
    Job,
    NewBatch,
    NewJob,
    QueueInfo,
    Submitted,
    iso,
    queue_settings,
    settings_to_redis,
)
from .observer import Observer
from .store import DEFAULT_TIMEOUT, Store, fcall, open_redis, parse_store_url

log = logging.getLogger("starq.engine")

# How much background work one maintenance call may do per queue and kind (a few ms of the store's time, so the
# calls of requests wait no longer than that behind it); the maintenance loop calls again while more is due.
TICK_LIMIT = 500
# The kinds of due work whose lag ``tick`` reports: scheduled jobs to promote, expired leases to reclaim,
# finished records past their retention to remove.
MAINTENANCE_KINDS = ("promote", "reclaim", "expire")
PURGE_CHUNK = 1000
# Queues ticked per pipelined round trip by the maintenance loop.
TICK_PIPELINE = 500
# Most jobs one listing looks at when it filters by more than one index (a tag and a status, or a search).
SCAN_BUDGET = 2000

_STORE_ERRORS = (redis_errors.ConnectionError, TimeoutError, OSError)


async def _settled(request: Awaitable[Any]) -> Any:
    """A pipelined command's reply, or the ResponseError the store answered it with (for the caller to handle
    item by item). A timeout or a lost connection raises: read inside ``_store_call``, it becomes
    StoreUnavailable like any other round trip's (read after it, it escaped as a bare TimeoutError and ended
    the maintenance loop, and with it the server)."""
    try:
        return await request
    except redis_errors.ResponseError as exc:
        return exc


def _store_error(exc: Exception) -> StarqError:
    """Starq's error for what a round trip to the store raised: the library's own error by its code, or
    StoreUnavailable when the store could not answer."""
    if isinstance(exc, redis_errors.ResponseError):
        return _translate(exc)
    return StoreUnavailable(f"cannot reach the store: {exc}")


def dedupe_hash(payload: Any) -> str:
    """The hash dedupe compares: of the decoded payload's canonical JSON (sorted keys, no whitespace), so two
    payloads that differ only in key order or spacing count as the same."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


# Job ids per call of a bulk action. A cancel costs the store ~0.15 ms per job on a 2-core machine, so 1,000 in
# one call would hold every other client back ~150 ms; 100 keep a call near the maintenance tick's few ms.
BULK_CHUNK = 100


@attrs.frozen
class AckOutcome:
    """The outcome of one item of a batch acknowledgement or of a bulk action."""

    id: str
    status: str = ""
    retries: int | None = None
    error: StarqError | None = None


class Claimed(list[Job]):
    """The jobs a claim got (a list), and why it got no more: the queue's rate limit allows nothing for
    ``rate_limited_ms`` (0: it did not stop the claim), or its concurrency ``held`` jobs back."""

    def __init__(self, jobs: list[Job], rate_limited_ms: int = 0, held: bool = False) -> None:
        super().__init__(jobs)
        self.rate_limited_ms = rate_limited_ms
        self.held = held

    @property
    def jobs(self) -> list[Job]:
        return self


@attrs.frozen
class JobPage:
    jobs: list[Job]
    has_more: bool
    cursor: str  # where the next page starts ("" when there is none)


@attrs.frozen
class DueSchedule:
    """A schedule whose run is due: its name, the run's due time and the schedule's definition."""

    name: str
    due_ms: int
    definition: dict[str, Any]


@attrs.frozen
class Ticked:
    """The background work one tick did on one queue, and the schedules it found due (for the engine's caller
    to run: the next times come from the cron library)."""

    promoted: int = 0
    reclaimed: int = 0
    expired: int = 0
    schedules: list[DueSchedule] = attrs.Factory(list)
    # Batch callbacks bound for other queues, waiting in this queue's outbox (for ``deliver_outbox``).
    outbox: list[str] = attrs.Factory(list)
    # Some kind of work used its whole limit: more may be due now (tick the queue again).
    more: bool = False
    # How long the oldest due item of each kind still waits after this tick (ms): the maintenance lag.
    lag_ms: dict[str, int] = attrs.field(factory=dict, eq=False)


@attrs.frozen
class ScheduleRecord:
    """A stored schedule: its definition as given, and its runs so far."""

    queue: str
    name: str
    definition: dict[str, Any]
    created_at: str
    next_ms: int
    last_run_at: str
    last_job_id: str

    @classmethod
    def from_values(cls, queue: str, values: list[Any]) -> ScheduleRecord:
        name, definition, created_at, next_ms, last_ms, last_job, _paused = values
        return cls(queue, name, orjson.loads(definition), iso(created_at), int(next_ms), iso(last_ms),
                   last_job or "")  # fmt: skip


@attrs.frozen
class Throughput:
    bucket_seconds: float
    now: str
    buckets: list[tuple[str, int, int]]


@attrs.frozen
class WorkerSeen:
    name: str
    last_seen: str
    jobs_in_hand: int


class Engine:
    """Starq's queues on one Redis (or Valkey) server, or on a Redis Cluster.

    Args:
        redis: the store client (``store.open_redis``).
        durable: answer writes only once the store has them on disk (``durability.py``).
        observer: told what the engine does, for metrics.
    """

    def __init__(
        self, redis: Store, *, durable: bool = False, replicas: int = 0, observer: Observer | None = None
    ) -> None:
        self._redis = redis
        self._durable = durable
        # In durable mode, how many replicas must also have each write (WAIT) before it is answered.
        self._replicas = replicas if durable else 0
        self.observer = observer or Observer()
        # Whether writes are confirmed with WAITAOF; set by check_durable (Redis 7.0 has no WAITAOF).
        self._waitaof = False

    @property
    def _confirms(self) -> bool:
        """Whether each write is followed by a confirmation (WAITAOF and/or WAIT) on its connection."""
        return self._durable and (self._waitaof or self._replicas > 0)

    def _confirm_in(self, pipe: Any) -> tuple[Any, Any]:
        """Queues the confirmations of the writes queued before in ``pipe``: (WAITAOF reply, WAIT reply)."""
        synced = pipe.waitaof(1, 0, DURABLE_TIMEOUT_MS) if self._waitaof else None
        replicated = pipe.wait(self._replicas, DURABLE_TIMEOUT_MS) if self._replicas else None
        return synced, replicated

    async def _confirmed(self, synced: Any, replicated: Any) -> None:
        if synced is not None:
            await confirm_on_disk(synced)
        if replicated is not None:
            await confirm_replicated(replicated, self._replicas)

    # -- plumbing -------------------------------------------------------------------------------------------

    @contextmanager
    def _store_call(self, operation: str) -> Iterator[None]:
        """One round trip: timed for the observer, and the store's failures turned into Starq's errors."""
        started = time.perf_counter()
        unavailable = False
        try:
            yield
        except (redis_errors.ResponseError, *_STORE_ERRORS) as exc:
            error = _store_error(exc)
            unavailable = isinstance(error, StoreUnavailable)
            raise error from exc
        finally:
            self.observer.store_call(operation, time.perf_counter() - started, unavailable)

    async def load_library(self) -> None:
        """Loads (or replaces) the Lua library; every server process does this when it starts."""
        with self._store_call("load_library"):
            await self._redis.function_load(LIBRARY, replace=True)

    async def _call(self, function: str, queue: str, args: Sequence[Any] = (), *, readonly: bool = False) -> Any:
        """One FCALL of the library on ``queue``: what ``_store_call`` does, written out (the generator-based
        context manager cost ~4 µs of every request's CPU; this is the path every request takes)."""
        meta = [keys.meta(queue)]
        values = [str(a) for a in args]
        started = time.perf_counter()
        unavailable = False
        try:
            try:
                return await self._fcall(function, keys=meta, args=values, readonly=readonly)
            except redis_errors.ResponseError as exc:
                if "Function not found" not in str(exc):
                    raise
                # The store lost its functions (restarted without persistence): nothing ran, so reload and
                # call again.
                await self._redis.function_load(LIBRARY, replace=True)
                return await self._fcall(function, keys=meta, args=values, readonly=readonly)
        except (redis_errors.ResponseError, *_STORE_ERRORS) as exc:
            error = _store_error(exc)
            unavailable = isinstance(error, StoreUnavailable)
            raise error from exc
        finally:
            self.observer.store_call(function.removeprefix("starq_"), time.perf_counter() - started, unavailable)

    async def _fcall(self, function: str, *, keys: list[str], args: list[str], readonly: bool = False) -> Any:
        """FCALL (FCALL_RO when ``readonly``), a write followed in durable mode by WAITAOF on the same
        connection."""
        if readonly or not self._confirms:
            return await fcall(self._redis, function, keys, args, readonly=readonly)
        # WAITAOF and WAIT confirm the writes of their own connection, and coredis spreads commands over its
        # pooled connections: the write and its confirmations go out together in one non-transactional
        # pipeline, which runs on one connection.
        async with self._redis.pipeline(transaction=False, raise_on_error=False) as pipe:
            reply = pipe.fcall(function, keys=keys, args=args)
            confirmations = self._confirm_in(pipe)
        result = await reply
        await self._confirmed(*confirmations)
        return result

    async def check_durable(self) -> None:
        """Checks that the store can honour durable mode (see ``durability.py``); raises StoreUnavailable
        saying what to change when it cannot."""
        with self._store_call("check_durable"):
            self._waitaof = await check_durable(self._redis)

    @property
    def durability(self) -> str:
        """How writes are made durable, for the start-up log."""
        if not self._durable:
            return "store default (appendfsync everysec: up to 1 s of writes lost on power failure)"
        how = "appendfsync always" + (", confirmed per write with WAITAOF" if self._waitaof else "")
        if self._replicas:
            how += f", and by {self._replicas} replica(s) with WAIT"
        return how

    async def ping(self) -> dict[str, Any]:
        """Checks the store; returns its version. Raises StoreUnavailable when it cannot be reached."""
        with self._store_call("ping"):
            info = await self._redis.info("server")
        return {"redis_version": info.get("redis_version", ""), "valkey_version": info.get("valkey_version", "")}

    # -- queues ---------------------------------------------------------------------------------------------

    async def create_queue(
        self, name: str, settings: Mapping[str, Any] | None = None, *, max_queues: int | None = None
    ) -> QueueInfo:
        """Creates a queue. With ``max_queues``, refuses one more once the store holds that many queues; the
        count is read just before creating, so creates racing each other may pass it by the number racing
        (the registry lives outside the queue's cluster slot, so one atomic check is not possible)."""
        if max_queues is not None and await self._registry("scard") >= max_queues:
            raise TooManyQueues(
                f"the store already holds {max_queues} queues, the most this server allows "
                "(STARQ_MAX_QUEUES); delete one first"
            )
        created = await self._call("starq_create_queue", name, settings_to_redis(queue_settings(settings)))
        # Registered after the queue exists (and again on a conflict), so a crash in between is repaired by
        # the next attempt instead of leaving a name that lists but does not exist.
        await self._registry("sadd", name)
        if not created:
            raise QueueExists(f"queue {name!r} already exists")
        return await self.queue_info(name)

    async def queue_info(self, name: str) -> QueueInfo:
        return QueueInfo.from_reply(name, await self._call("starq_queue_info", name, readonly=True))

    async def list_queues(self) -> list[QueueInfo]:
        names = sorted(await self._registry("smembers"))
        with self._store_call("list_queues"):
            async with self._redis.pipeline(transaction=False, raise_on_error=False) as pipe:
                requests = [pipe.fcall_ro("starq_queue_info", keys=[keys.meta(n)], args=[]) for n in names]
            replies = [await _settled(request) for request in requests]
        infos = []
        for name, reply in zip(names, replies, strict=True):
            if not isinstance(reply, redis_errors.ResponseError):
                infos.append(QueueInfo.from_reply(name, reply))
            elif not isinstance(_translate(reply), QueueNotFound):
                raise _translate(reply) from reply
            # else: being deleted, or deleted by a process that died before unregistering it: not listed.
        return infos

    async def queue_names(self) -> list[str]:
        return sorted(await self._registry("smembers"))

    async def update_queue(self, name: str, **changes: Any) -> QueueInfo:
        if changes:
            await self._call("starq_update_queue", name, settings_to_redis(changes))
        return await self.queue_info(name)

    async def pause(self, name: str) -> QueueInfo:
        return await self.update_queue(name, paused=True)

    async def resume(self, name: str) -> QueueInfo:
        return await self.update_queue(name, paused=False)

    async def delete_queue(self, name: str) -> None:
        """Deletes a queue and every key it has. The queue is gone for all callers after the first step; the
        records are then removed in bounded chunks (a process that dies halfway leaves the rest to the
        maintenance loop, which finishes any queue marked as being deleted)."""
        if not await self._call("starq_begin_delete", name):
            raise QueueNotFound(f"queue {name!r} not found")
        await self.purge(name)

    async def purge(self, name: str) -> bool:
        """Finishes deleting a queue marked as being deleted; False when the queue is live."""
        while True:
            done = await self._call("starq_purge", name, [PURGE_CHUNK])
            if done == -1:
                return False
            if done == 1:
                await self._registry("srem", name)
                return True

    async def _registry(self, op: str, *args: str) -> Any:
        with self._store_call("registry"):
            if op == "smembers":
                return await self._redis.smembers(keys.REGISTRY)
            if op == "scard":
                return await self._redis.scard(keys.REGISTRY)
            return await getattr(self._redis, op)(keys.REGISTRY, list(args))

    # -- jobs -----------------------------------------------------------------------------------------------

    async def submit(
        self, queue: str, jobs: Sequence[NewJob], ids: Sequence[str], batch: NewBatch | None = None
    ) -> list[Submitted]:
        """Submits jobs atomically: all are stored, or (queue missing, store down, a dependency that names no job
        of the queue: UnknownDependency) none. With ``batch``, they form that batch.

        ``ids`` are chosen by the caller so a submit retried after a timeout stores nothing twice.
        """
        args: list[Any] = [len(jobs)]
        if batch is None:
            args += ["", "", ""]
        else:
            args += [batch.id, batch.callback.to_json() if batch.callback else "", batch.callback_id]
        for job_id, job in zip(ids, jobs, strict=True):
            args += [job_id, job.payload, job.priority, job.run_at_ms, job.dedupe_hash, job.options]
        reply = await self._call("starq_submit", queue, args)
        results = [Submitted(r[0], r[1], iso(r[2]), r[3], r[4] if len(r) > 4 else "") for r in orjson.loads(reply)]
        self.observer.submitted(queue, sum(1 for r in results if not r.skipped))
        return results

    async def claim(self, queue: str, count: int, worker: str = "", park_ms: int = 0) -> Claimed:
        """Claims up to ``count`` ready jobs without waiting, within the queue's limits. Long-polling lives in
        ``ClaimBroker``: it passes ``park_ms`` > 0 when it will wait for work should this claim find none, so
        the store marks the queue as waited on for that long and submits publish "ready" only then."""
        token = os.urandom(6).hex() + "-"
        reply = await self._call("starq_claim", queue, (count, token, worker, park_ms))
        jobs = [Job.from_record(queue, r) for r in orjson.loads(reply[2])]
        if jobs:
            self.observer.claimed(queue, jobs)
        claimed = Claimed(jobs, int(reply[0]), bool(reply[1]))
        if claimed.rate_limited_ms or claimed.held:
            self.observer.limited(queue, claimed.rate_limited_ms > 0, claimed.held)
        return claimed

    async def release_undelivered(self, queue: str, jobs: Sequence[Job]) -> int:
        """Returns claimed jobs that never reached a worker to the queue at once, as if never claimed."""
        args: list[str] = []
        for job in jobs:
            args += [job.id, job.lease_id]
        if not args:
            return 0
        released = int(await self._call("starq_release_undelivered", queue, args))
        self.observer.released(queue, jobs, released)
        return released

    async def release(self, queue: str, job_id: str, lease_id: str = "", delay: float = 0) -> str:
        """A worker gives a claimed job back without counting an attempt (scheduled when ``delay`` > 0).
        Returns the job's new status."""
        reply = await self._call("starq_release", queue, [job_id, lease_id, delay])
        return reply[1]

    async def promote(self, queue: str, job_id: str) -> str:
        """A scheduled job becomes pending now."""
        return await self._call("starq_promote", queue, [job_id])

    async def purge_status(self, queue: str, status: str) -> int:
        """Removes every job of ``status`` (completed, failed, cancelled, pending or scheduled) in bounded
        chunks; returns how many."""
        total = 0
        while n := int(await self._call("starq_purge_status", queue, [status, PURGE_CHUNK])):
            total += n
            if n < PURGE_CHUNK:
                break
        return total

    async def complete(self, queue: str, job_id: str, lease_id: str = "", result_json: str = "{}") -> str:
        reply = await self._call("starq_complete", queue, [job_id, lease_id, result_json])
        self.observer.completed(queue, [job_id])
        return reply[1]

    async def fail(
        self, queue: str, job_id: str, lease_id: str = "", error: str = "", retry: bool = True
    ) -> tuple[str, int]:
        """Records a failed attempt. Returns the job's new status and its retries."""
        reply = await self._call("starq_fail", queue, [job_id, lease_id, error, int(retry), random.random()])
        self.observer.failed(queue, job_id, reply[1])
        return reply[1], int(reply[2])

    async def extend(self, queue: str, job_id: str, lease_id: str = "", seconds: float | None = None) -> str:
        """Extends a lease to ``seconds`` from now (default: the queue's claim_timeout)."""
        exp = await self._call("starq_extend", queue, [job_id, lease_id, "" if seconds is None else seconds])
        return iso(exp)

    async def ack(
        self,
        queue: str,
        completes: Sequence[tuple[str, str, str]],
        fails: Sequence[tuple[str, str, str, bool]],
    ) -> list[AckOutcome]:
        """Completes and fails many jobs in one atomic call; each item succeeds or fails alone, exactly as
        ``complete`` and ``fail`` would (completes first, then fails, in the order given)."""
        if not completes and not fails:
            # Nothing to report, but the queue must still exist (and the store be reachable) like any call.
            await self.queue_info(queue)
            return []
        args: list[Any] = [len(completes)]
        for job_id, lease, result in completes:
            args += (job_id, lease, result)
        for job_id, lease, error, retry in fails:
            args += (job_id, lease, error, "1" if retry else "0", random.random())
        ids = [c[0] for c in completes] + [f[0] for f in fails]
        try:
            replies = orjson.loads(await self._call("starq_ack", queue, args))
        except QueueNotFound as exc:
            # As if each item had been tried on its own: every one reports the missing queue.
            return [AckOutcome(id=job_id, error=exc) for job_id in ids]
        outcomes = []
        completed = []
        for i, (job_id, reply) in enumerate(zip(ids, replies, strict=True)):
            if reply[0] == "error":
                outcomes.append(AckOutcome(id=job_id, error=_translate_message(reply[1])))
                continue
            outcomes.append(AckOutcome(id=job_id, status=reply[1], retries=int(reply[2])))
            if i < len(completes):
                completed.append(job_id)
            else:
                self.observer.failed(queue, job_id, reply[1])
        if completed:
            self.observer.completed(queue, completed)
        return outcomes

    async def cancel(self, queue: str, job_id: str) -> str:
        return await self._call("starq_cancel", queue, [job_id])

    async def retry(self, queue: str, job_id: str) -> str:
        return await self._call("starq_retry", queue, [job_id])

    async def bulk(self, queue: str, action: str, ids: Sequence[str]) -> list[AckOutcome]:
        """Does ``action`` (one of BULK_ACTIONS) to each job of ``ids`` in turn: retry, cancel and promote
        exactly as ``retry``, ``cancel`` and ``promote`` would (a cancel's dependents go with it before the next
        id), delete removes a finished job (completed, failed or cancelled) for good and refuses any other with
        InvalidState. An item that cannot be done does not stop the others; an id given twice is done once and
        then answered as a second call would be. Raises QueueNotFound when the queue does not exist.

        Each item is atomic, and the items go to the store BULK_CHUNK per call, in order, one call after the
        other: one call for all 1,000 would stall the store for every other client while it runs. Items stand
        alone, so nothing depends on the chunks being one transaction. A queue deleted between two chunks
        reports queue_not_found for the items that had not been done.
        """
        if action not in BULK_ACTIONS:
            raise ValueError(f"unknown bulk action {action!r}")
        if not ids:
            await self.queue_info(queue)
            return []
        outcomes: list[AckOutcome] = []
        for start in range(0, len(ids), BULK_CHUNK):
            chunk = ids[start : start + BULK_CHUNK]
            try:
                replies = await self._call("starq_bulk", queue, [action, *chunk])
            except QueueNotFound as exc:
                if not outcomes:
                    raise
                outcomes += [AckOutcome(id=job_id, error=exc) for job_id in ids[start:]]
                break
            outcomes += [
                AckOutcome(id=job_id, status=reply[1])
                if reply[0] == "ok"
                else AckOutcome(id=job_id, error=_translate_message(reply[1]))
                for job_id, reply in zip(chunk, replies, strict=True)
            ]
        return outcomes

    async def retry_dead(self, queue: str) -> int:
        """Puts every dead job of the queue back to pending, in bounded chunks; returns how many."""
        total = 0
        while n := await self._call("starq_retry_dead", queue, [PURGE_CHUNK]):
            total += n
        return total

    async def get_job(self, queue: str, job_id: str) -> Job:
        """A job with its history and the jobs that depend on it."""
        record, history, dependents = await self._call("starq_get_job", queue, [job_id], readonly=True)
        return Job.from_record(queue, record, history, dependents)

    async def watch_job(self, queue: str, job_id: str) -> Job:
        """``get_job``, and unless the job has finished, it is marked so that finishing publishes it on the done
        channel (``subscribe``): the way to wait for its outcome without polling."""
        record, history, dependents = await self._call("starq_watch_job", queue, [job_id])
        return Job.from_record(queue, record, history, dependents)

    async def progress(self, queue: str, job_id: str, lease_id: str, progress_json: str) -> None:
        """Records the progress the worker of a claimed job reports (same lease rules as ``complete``)."""
        await self._call("starq_progress", queue, [job_id, lease_id, progress_json])

    async def get_batch(self, queue: str, batch_id: str) -> Batch:
        total, completed, failed, cancelled, created, finished, callback = await self._call(
            "starq_get_batch", queue, [batch_id], readonly=True
        )
        return Batch(batch_id, int(total), int(completed), int(failed), int(cancelled), iso(created), iso(finished),
                     callback or None)  # fmt: skip

    async def read_events(self, queue: str, after: int = -1, count: int = 500) -> EventPage:
        """Up to ``count`` events of the queue's log numbered after ``after``, oldest first (none with -1: only
        the log's bounds)."""
        reply = await self._call("starq_read_events", queue, [after, count], readonly=True)
        events = [Event(int(n), kind, job, status, int(at), extra) for n, kind, job, status, at, extra in reply[2:]]
        return EventPage(int(reply[0]), int(reply[1]), events)

    async def list_jobs(
        self, queue: str, status: str = "", count: int = 50, cursor: str = "", *, tag: str = "", text: str = ""
    ) -> JobPage:
        """A page of jobs, newest first, every filter applied before paging. With several filters (a tag and
        a status, or a search ``text``), at most SCAN_BUDGET jobs are looked at: the page may come back short,
        with ``has_more`` and a cursor to go on from."""
        args = [status, count, cursor, tag, text.lower(), SCAN_BUDGET]
        reply = await self._call("starq_list_jobs", queue, args, readonly=True)
        return JobPage([Job.from_record(queue, r) for r in orjson.loads(reply[2])], bool(reply[0]), reply[1] or "")

    # -- stats ----------------------------------------------------------------------------------------------

    async def throughput(self, queue: str, buckets: int = 180) -> Throughput:
        """Completed and failed jobs per bucket (5 s each), oldest first, from the engine's ring buffer."""
        reply = await self._call("starq_throughput", queue, [buckets], readonly=True)
        size = int(reply[0])
        return Throughput(
            bucket_seconds=size / 1000,
            now=iso(reply[1]),
            buckets=[(iso(int(b) * size), int(c), int(f)) for b, c, f in reply[2:]],
        )

    async def workers(self, queue: str) -> list[WorkerSeen]:
        reply = await self._call("starq_workers", queue, readonly=True)
        seen = [WorkerSeen(reply[i], iso(reply[i + 1]), int(reply[i + 2])) for i in range(0, len(reply), 3)]
        return sorted(seen, key=lambda w: w.last_seen, reverse=True)

    # -- background work ------------------------------------------------------------------------------------

    async def tick(self, queue: str) -> Ticked:
        """Due background work of one queue (see ``Ticked``); a queue marked as being deleted is purged
        instead."""
        try:
            reply = await self._call("starq_tick", queue, [TICK_LIMIT, random.random()])
        except QueueNotFound:
            await self.purge(queue)
            return Ticked()
        return self._ticked(queue, reply)

    async def tick_many(self, queues: Sequence[str]) -> dict[str, Ticked]:
        """``tick`` for many queues, in one pipelined round trip per TICK_PIPELINE queues (the maintenance loop
        ticks every queue twice a second)."""
        out: dict[str, Ticked] = {}
        for start in range(0, len(queues), TICK_PIPELINE):
            out.update(await self._tick_chunk(queues[start : start + TICK_PIPELINE]))
        return out

    async def _tick_chunk(self, queues: Sequence[str]) -> dict[str, Ticked]:
        args = [str(TICK_LIMIT), str(random.random())]
        with self._store_call("tick"):
            async with self._redis.pipeline(transaction=False, raise_on_error=False) as pipe:
                requests = [pipe.fcall("starq_tick", keys=[keys.meta(q)], args=args) for q in queues]
                confirmations = self._confirm_in(pipe) if self._confirms else (None, None)
            replies = [await _settled(request) for request in requests]
            await self._confirmed(*confirmations)
        out: dict[str, Ticked] = {}
        for queue, reply in zip(queues, replies, strict=True):
            if not isinstance(reply, redis_errors.ResponseError):
                out[queue] = self._ticked(queue, reply)
            elif "Function not found" in str(reply):
                # The store lost its functions (restarted without persistence): tick() reloads them.
                out[queue] = await self.tick(queue)
            elif isinstance(_translate(reply), QueueNotFound):
                await self.purge(queue)
                out[queue] = Ticked()
            else:
                raise _translate(reply) from reply
        return out

    def _ticked(self, queue: str, reply: list[Any]) -> Ticked:
        promoted, reclaimed, expired, due, outbox, more, *lags = reply
        if int(reclaimed):
            self.observer.reclaimed(queue, int(reclaimed))
        schedules = [DueSchedule(due[i], int(due[i + 1]), orjson.loads(due[i + 2])) for i in range(0, len(due), 3)]
        lag_ms = dict(zip(MAINTENANCE_KINDS, (int(lag) for lag in lags), strict=True))
        self.observer.maintenance_lag(queue, lag_ms)
        return Ticked(int(promoted), int(reclaimed), int(expired), schedules, list(outbox), bool(int(more)), lag_ms)

    async def deliver_outbox(self, queue: str, entries: Sequence[str]) -> int:
        """Submits the callbacks of ``queue``'s outbox (as ``tick`` found them) to their queues, then takes them
        out of it. Each goes in under the job id chosen when its batch was submitted, so delivering one twice
        (a process that died in between, two processes at once) stores it once. A callback whose queue no
        longer exists is dropped, with a warning. Returns how many were delivered."""
        delivered = 0
        for entry in entries:
            callback = orjson.loads(entry)
            try:
                await self.submit(callback["queue"], [NewJob(callback["payload"], int(callback["priority"]))],
                                  [callback["id"]])  # fmt: skip
                delivered += 1
            except QueueNotFound:
                log.warning("batch callback %s for queue %s dropped: the queue does not exist",
                            callback["id"], callback["queue"])  # fmt: skip
        await self._call("starq_outbox_done", queue, list(entries))
        return delivered

    # -- schedules ------------------------------------------------------------------------------------------

    async def create_schedule(self, queue: str, name: str, definition: Mapping[str, Any], next_ms: int) -> None:
        """Stores a schedule (its definition as given, and when it runs next)."""
        paused = "1" if definition.get("paused") else "0"
        await self._call("starq_create_schedule", queue, [name, orjson.dumps(definition).decode(), next_ms, paused])

    async def update_schedule(self, queue: str, name: str, definition: Mapping[str, Any], next_ms: int) -> None:
        paused = "1" if definition.get("paused") else "0"
        await self._call("starq_update_schedule", queue, [name, orjson.dumps(definition).decode(), next_ms, paused])

    async def delete_schedule(self, queue: str, name: str) -> None:
        await self._call("starq_delete_schedule", queue, [name])

    async def schedules(self, queue: str, name: str = "") -> list[ScheduleRecord]:
        """Every schedule of the queue by name, or the one named (ScheduleNotFound if there is none)."""
        reply = await self._call("starq_get_schedules", queue, [name], readonly=True)
        return [ScheduleRecord.from_values(queue, values) for values in reply]

    async def run_schedule(self, queue: str, due: DueSchedule, next_ms: int, job: NewJob, job_id: str) -> bool:
        """Submits the schedule's job for its due time and moves it on to ``next_ms``, unless another process
        did it first (then False)."""
        args = [due.name, due.due_ms, next_ms, job_id, job.payload, job.priority, job.dedupe_hash, job.options]
        reply = await self._call("starq_run_schedule", queue, args)
        if int(reply[0]):
            self.observer.schedule_ran(queue, due.name)
            if not int(reply[3]):
                self.observer.submitted(queue, 1)
            return True
        return False

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[tuple[str, str]]]:
        """The library's notifications from every server process (Redis pub/sub), as (channel name, message):
        channel names are the keys of ``keys.CHANNELS``.

        A notification may be lost while the subscription reconnects; listeners must not rely on it alone.
        """
        names = {channel: name for name, channel in keys.CHANNELS.items()}
        async with self._redis.pubsub(channels=list(names), ignore_subscribe_messages=True) as sub:

            async def messages() -> AsyncIterator[tuple[str, str]]:
                async for message in sub:
                    if message["type"] == "message":
                        yield names[str(message["channel"])], str(message["data"])

            yield messages()


# The Lua library signals errors with a leading code word; this maps it to the class to raise.
LUA_ERRORS: dict[str, type[StarqError]] = {
    "NOQUEUE": QueueNotFound,
    "NOJOB": JobNotFound,
    "NOTCLAIMED": NotClaimed,
    "LEASE": LeaseLost,
    "CANCELLED": JobCancelled,
    "STATE": InvalidState,
    "EXISTS": ScheduleExists,
    "NOSCHEDULE": ScheduleNotFound,
    "NOBATCH": BatchNotFound,
}


def _translate(exc: redis_errors.ResponseError) -> StarqError:
    return _translate_message(str(exc))


def _translate_message(message: str) -> StarqError:
    code, _, detail = message.partition(" ")
    if code == "NODEP":
        item, index, job_id = detail.split(" ", 2)
        return UnknownDependency(int(item), int(index), job_id)
    cls = LUA_ERRORS.get(code)
    if cls is not None:
        return cls(detail)
    if code in ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"):
        return StoreUnavailable(f"the store is not ready: {message}")
    return StarqError(f"store error: {message}")


@asynccontextmanager
async def open_engine(
    url: str,
    *,
    max_connections: int = 16,
    wait_for_store: float = 0,
    durable: bool = False,
    observer: Observer | None = None,
    store_timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[Engine]:
    """Opens the Redis client and loads the Lua library.

    With ``wait_for_store`` seconds, a store that is not reachable yet (still starting, or loading its AOF) is
    retried until then, so a server started next to its store does not fail for being first. With
    ``durable``, the store must make every answered write durable (``Engine.check_durable``). Each step of a
    round trip is bounded by ``store_timeout`` seconds (in durable mode, at least long enough for the store
    to confirm a write on disk, which it may take DURABLE_TIMEOUT_MS to refuse).
    """
    if durable:
        store_timeout = max(store_timeout, DURABLE_TIMEOUT_MS / 1000 + 1)
    # A Sentinel-managed primary fails over to a replica: in durable mode a write is answered only once a
    # replica has it too, so that a promotion loses nothing that was answered (docs/durability.md).
    replicas = DURABLE_REPLICAS if parse_store_url(url).kind == "sentinel" else 0
    async with open_redis(url, max_connections=max_connections, timeout=store_timeout) as redis:
        engine = Engine(redis, durable=durable, replicas=replicas, observer=observer)
        deadline = trio.current_time() + wait_for_store
        while True:
            try:
                await engine.load_library()
                break
            except StoreUnavailable as exc:
                if trio.current_time() >= deadline:
                    raise
                log.warning("waiting for the store: %s", exc.detail)
                await trio.sleep(1)
        if durable:
            await engine.check_durable()
        yield engine
