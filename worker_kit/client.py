"""``StarqClient``: every endpoint of the Starq HTTP API as a typed async method (httpx; under Trio or asyncio).

Error answers become the exception classes of ``starq.worker_kit.errors``, chosen by the server's stable
``error`` code. Requests that got no answer are retried with backoff and jitter, but only where a repeat cannot
do harm:

* Requests that never reached the server (connection refused, connect timeout, no free pooled connection) are
  retried whatever they are: the server saw nothing.
* Requests whose connection broke *after* they were sent may have been carried out. Those are retried only when
  repeating them changes nothing: reads, pause/resume (of queues and of schedules), settings changes (of queues
  and of schedules), and the outcome reports ``complete``, ``fail``, ``extend``, ``release`` and ``ack`` **when
  they quote a lease_id** (the server answers a repeated report with the same lease without acting again: as it
  answered the first, or, for a release whose job was claimed again meanwhile, with a 409). A 503 answer is
  treated the same way.
* Everything else — submit, create (of queues and schedules), delete (of queues and schedules), cancel, retry,
  promote, bulk, purge, and claim — raises ``ServerUnreachable`` with ``maybe_processed=True`` instead, and the caller
  decides. A repeated promote or cancel would answer ``409 invalid_state`` for a job the first one did move; a
  repeated purge would also remove the jobs that reached the status in between. A claim is not repeated because
  the first attempt may have taken jobs: the server puts them back at once when it cannot deliver its answer,
  and otherwise their lease expires after ``claim_timeout`` and they are handed out again; a blind repeat would
  only claim *more*. ``Worker`` therefore re-claims from its own loop after a pause, sized to its free capacity.
* ``progress`` is a report with a lease like the others (a repeat sets the same value; with the queue's events on,
  it may log one more ``progress`` event). ``wait`` is a read, repeated in chunks of at most ``MAX_WAIT_MS`` until
  the job has finished or its ``timeout`` has passed.
* ``events`` is a stream, not a request: it reconnects by itself for as long as it is read. When its connection
  breaks, stays silent past ``idle_timeout`` (the server sends a keep-alive every 15 s by default), or is ended by
  the server (shutting down), or the server answers or streams an error of the 503 kind (the store is away), it
  connects again after a pause (``retry.backoff``, growing while attempts keep failing and reset once one gets a
  stream) with ``Last-Event-ID``: the id of the last event it handed out. So no event the log still holds is
  missed, and none is handed out twice; events the log's cap dropped meanwhile are announced by a ``dropped``
  event. Only its first connection gives up (after ``retry.attempts`` tries, as a read), so a wrong URL fails
  fast; other errors end it at once: ``QueueNotFound`` when the queue is deleted, ``Unauthorized``, … One gap
  remains: a stream started from now (``since=None``) that loses its connection before its first event resumes
  from the moment it reconnects, since the server does not tell a new reader where its log stands; start from
  a known id (``since=0`` replays the log) where that matters.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Unpack
from urllib.parse import quote

import anyio
import httpx

from .event_stream import EventStream
from .http import HttpCore, Safety, check_keywords
from .models import AckResult, Batch, BulkResult, FailOutcome, Job, JobPage, QueueInfo, Schedule, Submitted
from .protocol import JOB_OPTIONS, MAX_WAIT_MS, SUBMIT_OPTIONS, JobOptions, SubmitOptions

MAX_PAGE = 500  # the server's largest page for GET .../jobs


# What a schedule's PATCH may change.
SCHEDULE_FIELDS = ("cron", "every", "timezone", "payload", "paused", "priority", *JOB_OPTIONS)


class StarqClient(HttpCore):
    """An async client for one Starq server. Use it as ``async with StarqClient(url, api_key) as client:``.

    Args:
        url: the server's base URL, e.g. ``http://localhost:8000``.
        api_key: sent as ``X-API-Key`` (writes need it; reads too when the server sets ``STARQ_READ_AUTH``).
        options: ``ClientOptions``: ``timeout``, ``retry``, ``transport``.
    """

    # -- meta -----------------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``GET /api/health``. A store that is down raises ``StoreUnavailable``."""
        return await self.request("GET", "/api/health", safety=Safety.IDEMPOTENT)

    async def openapi(self) -> dict[str, Any]:
        """``GET /api/openapi.json``: the server's OpenAPI document."""
        return await self.request("GET", "/api/openapi.json", safety=Safety.IDEMPOTENT)

    # -- queues ---------------------------------------------------------------------------------------------

    async def create_queue(self, name: str, **settings: Any) -> QueueInfo:
        """``POST /api/v1/queues``. Settings: description, max_retries, claim_timeout, dedupe, retry_delay,
        retry_delay_max, retention, concurrency, key_concurrency, rate_limit (``{"max": n, "per_ms": m}``), events
        and events_max (``protocol.QUEUE_SETTINGS``; ``None`` values are left to the server's defaults)."""
        body = {"name": name, **{k: v for k, v in settings.items() if v is not None}}
        return QueueInfo.from_json(await self.request("POST", "/api/v1/queues", json=body))

    async def list_queues(self) -> list[QueueInfo]:
        """``GET /api/v1/queues``, sorted by name."""
        data = await self.request("GET", "/api/v1/queues", safety=Safety.IDEMPOTENT)
        return [QueueInfo.from_json(q) for q in data["queues"]]

    async def get_queue(self, name: str) -> QueueInfo:
        """``GET /api/v1/queues/{name}``: settings and counts."""
        return QueueInfo.from_json(await self.request("GET", _q(name), safety=Safety.IDEMPOTENT))

    async def update_queue(self, name: str, *, clear_rate_limit: bool = False, **changes: Any) -> QueueInfo:
        """``PATCH /api/v1/queues/{name}`` with the settings to change (``None`` values are left alone).

        ``rate_limit={"max": n, "per_ms": m}`` sets a rate limit; ``clear_rate_limit=True`` removes it (the
        request then sends ``"rate_limit": null``). ``rate_limit=None`` leaves the limit as it is, like any other
        ``None``, so a caller that passes every option through (as the CLI does) never removes it by accident.
        """
        body = {k: v for k, v in changes.items() if v is not None}
        if clear_rate_limit:
            if "rate_limit" in body:
                raise ValueError("give rate_limit or clear_rate_limit=True, not both")
            body["rate_limit"] = None
        return QueueInfo.from_json(await self.request("PATCH", _q(name), json=body, safety=Safety.IDEMPOTENT))

    async def delete_queue(self, name: str) -> dict[str, Any]:
        """``DELETE /api/v1/queues/{name}``: removes the queue and every job in it."""
        return await self.request("DELETE", _q(name))

    async def pause(self, name: str) -> QueueInfo:
        """``POST /api/v1/queues/{name}/pause``: the queue hands out no jobs until resumed."""
        return QueueInfo.from_json(await self.request("POST", _q(name) + "/pause", safety=Safety.IDEMPOTENT))

    async def resume(self, name: str) -> QueueInfo:
        """``POST /api/v1/queues/{name}/resume``."""
        return QueueInfo.from_json(await self.request("POST", _q(name) + "/resume", safety=Safety.IDEMPOTENT))

    async def retry_dead(self, name: str) -> int:
        """``POST /api/v1/queues/{name}/retry``: every dead job back to pending. Returns how many."""
        return int((await self.request("POST", _q(name) + "/retry"))["retried"])

    async def stats(self, name: str) -> dict[str, Any]:
        """``GET /api/v1/queues/{name}/stats``: throughput buckets and recent workers."""
        return await self.request("GET", _q(name) + "/stats", safety=Safety.IDEMPOTENT)

    # -- jobs -----------------------------------------------------------------------------------------------

    async def submit(
        self, queue: str, payload: Mapping[str, Any], *, priority: int = 0, **options: Unpack[SubmitOptions]
    ) -> Job:
        """Submits one job with ``options`` (``SubmitOptions``: the job options, ``delay`` or ``run_at``, and
        ``depends_on`` with ``on_dependency_failure``). Returns it (``status`` is ``pending``, ``scheduled`` or
        ``waiting``).

        A job skipped as a duplicate (dedupe, or its ``unique_key``) comes back as the job the server already had.
        """
        check_keywords(options, SUBMIT_OPTIONS, "StarqClient.submit")
        body: dict[str, Any] = {"payload": dict(payload), "priority": priority}
        body.update(_given(options, ("delay", "run_at")))
        body.update(job_options(options))
        body.update(dependency_options(options))
        return (await self._submitted(queue, json=body)).jobs[0]

    async def submit_many(
        self,
        queue: str,
        jobs: Iterable[Mapping[str, Any]],
        *,
        priority: int | None = None,
        batch: Mapping[str, Any] | bool = False,
        **options: Unpack[SubmitOptions],
    ) -> Submitted:
        """Submits jobs atomically (all or none). Each item is ``{"payload": {...}, "priority"?, "delay"?,
        "run_at"?, <job options>?, "depends_on"?, "on_dependency_failure"?}``; at most 1,000 items per call (the
        server's default limit).

        An item's ``depends_on`` may name earlier items of the same call as ``"#i"`` (item ``i``), besides job ids.

        ``priority`` and the ``options`` (``SubmitOptions``; ``None``: not sent) apply to every item that does not
        set them itself; ``delay`` and ``run_at`` only to items that set neither. The same ``unique_key`` for every
        item means one job: the others are skipped. A shared ``depends_on`` takes job ids only (``"#i"`` belongs
        in an item: item ``i`` cannot wait for itself).

        ``batch``: ``True`` tracks the jobs as one batch (``Submitted.batch_id``; see ``get_batch``); a mapping is
        the batch as the API takes it, ``{"callback": {"payload": {...}, "priority"?, "queue"?}}``: a job submitted
        once, when every job of the batch has finished, to ``queue`` (default: this one), its payload getting
        ``"batch": {"id", "total", "completed", "failed", "cancelled"}``. A callback queue that does not exist
        raises ``QueueNotFound``.
        """
        check_keywords(options, SUBMIT_OPTIONS, "StarqClient.submit_many")
        shared: dict[str, Any] = {"priority": priority} if priority is not None else {}
        shared.update(job_options(options))
        depends_on = options.get("depends_on")
        if depends_on is not None and any(str(d).startswith("#") for d in depends_on):
            raise ValueError('a shared depends_on takes job ids; give "#i" in the depends_on of the items that need it')
        shared.update(dependency_options(options))
        timing = _given(options, ("delay",)) or _given(options, ("run_at",))
        items = []
        for job in jobs:
            item = {**shared, **job}
            if timing and item.get("delay") is None and item.get("run_at") is None:
                item.update(timing)
            items.append(item)
        body: dict[str, Any] = {"jobs": items}
        if batch is not False:
            body["batch"] = {} if batch is True else dict(batch)
        return await self._submitted(queue, json=body)

    async def submit_encoded(self, queue: str, body: bytes) -> Submitted:
        """Submits a request body that is already JSON (the CLI's streaming submit builds it from raw lines)."""
        return await self._submitted(queue, content=body)

    async def _submitted(self, queue: str, **body: Any) -> Submitted:
        data = await self.request("POST", _jobs(queue), **body)
        return Submitted(
            jobs=[Job.from_json(j) for j in data["jobs"]],
            submitted=int(data["submitted"]),
            skipped=int(data["skipped"]),
            batch_id=data.get("batch_id") or "",
        )

    async def list_jobs(
        self, queue: str, *, status: str = "", count: int = 50, cursor: str = "", tag: str = "", q: str = ""
    ) -> JobPage:
        """``GET .../jobs``: one page, newest first, filtered by ``status`` before paging.

        ``tag`` lists only the jobs with that tag; ``q`` searches (jobs whose id starts with the text, or whose
        payload or error contains it, case-insensitive). With a tag and a status, or a search, the server looks
        at a bounded number of jobs per page, so a page may come back short with ``has_more`` (``iter_jobs``
        goes on by itself).
        """
        params: dict[str, Any] = {"count": count}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        if tag:
            params["tag"] = tag
        if q:
            params["q"] = q
        data = await self.request("GET", _jobs(queue), params=params, safety=Safety.IDEMPOTENT)
        return JobPage(
            jobs=[Job.from_json(j) for j in data["jobs"]], cursor=data["cursor"], has_more=bool(data["has_more"])
        )

    async def iter_jobs(
        self,
        queue: str,
        *,
        status: str = "",
        limit: int | None = None,
        cursor: str = "",
        tag: str = "",
        q: str = "",
    ) -> AsyncIterator[Job]:
        """Jobs newest first, following cursors across pages until ``limit`` jobs (or all of them)."""
        seen = 0
        while limit is None or seen < limit:
            want = MAX_PAGE if limit is None else min(MAX_PAGE, limit - seen)
            page = await self.list_jobs(queue, status=status, count=want, cursor=cursor, tag=tag, q=q)
            for job in page.jobs:
                yield job
            seen += len(page.jobs)
            if not page.has_more or not page.cursor:
                return
            cursor = page.cursor

    async def get_job(self, queue: str, job_id: str) -> Job:
        """``GET .../jobs/{id}``: the job with its result or error (and, in ``raw``, its ``history`` and the
        ``dependents`` waiting for it)."""
        return Job.from_json(await self.request("GET", _job(queue, job_id), safety=Safety.IDEMPOTENT))

    async def claim(self, queue: str, *, count: int = 1, block_ms: int = 0, worker: str = "") -> list[Job]:
        """``POST .../jobs/claim``: up to ``count`` jobs, waiting up to ``block_ms`` for the first one.

        Never retried once sent (see the module docstring); the read timeout is ``timeout`` + ``block_ms``.
        """
        body = {"count": count, "block_ms": block_ms, "worker": worker}
        wait = httpx.Timeout(self.timeout, read=self.timeout + block_ms / 1000)
        data = await self.request("POST", _jobs(queue) + "/claim", json=body, timeout=wait)
        return [Job.from_json(j) for j in data["jobs"]]

    async def complete(self, queue: str, job_id: str, result: Any = None, *, lease_id: str | None = None) -> str:
        """``PUT .../jobs/{id}/complete``. Returns the new status. A stale ``lease_id`` raises ``LeaseLost``."""
        body = {"result": {} if result is None else result, "lease_id": lease_id}
        data = await self.request("PUT", _job(queue, job_id) + "/complete", json=body, safety=_by_lease(lease_id))
        return data["status"]

    async def fail(
        self, queue: str, job_id: str, error: str = "", *, lease_id: str | None = None, retry: bool = True
    ) -> FailOutcome:
        """``PUT .../jobs/{id}/fail``: retried with the queue's backoff while attempts remain, else dead;
        ``retry=False`` dead-letters at once."""
        body = {"error": error, "lease_id": lease_id, "retry": retry}
        data = await self.request("PUT", _job(queue, job_id) + "/fail", json=body, safety=_by_lease(lease_id))
        return FailOutcome(status=data["status"], job_id=data["job_id"], retries=int(data["retries"]))

    async def extend(
        self, queue: str, job_id: str, *, lease_id: str | None = None, seconds: float | None = None
    ) -> str:
        """``PUT .../jobs/{id}/extend``: the lease now ends ``seconds`` from now (default: the queue's
        ``claim_timeout``). Returns the new ``lease_expires_at``."""
        body = {"lease_id": lease_id, "seconds": seconds}
        data = await self.request("PUT", _job(queue, job_id) + "/extend", json=body, safety=_by_lease(lease_id))
        return data["lease_expires_at"]

    async def release(self, queue: str, job_id: str, *, lease_id: str | None, delay: float = 0) -> str:
        """``POST .../jobs/{id}/release``: gives a claimed job back **without counting an attempt** (what a
        worker that shuts down does with the jobs it holds). It is pending again at once, or ``scheduled``
        after ``delay`` seconds. Returns the new status. Same 409s as ``complete``: ``LeaseLost``,
        ``NotClaimed``, ``JobCancelled``."""
        body = {"lease_id": lease_id, "delay": delay}
        data = await self.request("POST", _job(queue, job_id) + "/release", json=body, safety=_by_lease(lease_id))
        return data["status"]

    async def ack(
        self, queue: str, *, complete: Iterable[Mapping[str, Any]] = (), fail: Iterable[Mapping[str, Any]] = ()
    ) -> AckResult:
        """``POST .../jobs/ack``: many outcomes in one request; each succeeds or fails on its own.

        Items: ``{"id", "lease_id"?, "result"?}`` to complete, ``{"id", "lease_id"?, "error"?, "retry"?}`` to fail.
        """
        completes, fails = [dict(c) for c in complete], [dict(f) for f in fail]
        all_leased = all(item.get("lease_id") for item in completes + fails)
        data = await self.request(
            "POST",
            _jobs(queue) + "/ack",
            json={"complete": completes, "fail": fails},
            safety=Safety.IDEMPOTENT if all_leased else Safety.UNSENT_ONLY,
        )
        return AckResult(
            results=data["results"], completed=data["completed"], failed=data["failed"], errors=data["errors"]
        )

    async def cancel(self, queue: str, job_id: str) -> str:
        """``DELETE .../jobs/{id}``: a pending, scheduled or claimed job becomes ``cancelled`` (the worker of a
        claimed one gets ``JobCancelled`` at its next extend, complete or fail)."""
        return (await self.request("DELETE", _job(queue, job_id)))["status"]

    async def retry_job(self, queue: str, job_id: str) -> str:
        """``POST .../jobs/{id}/retry``: a dead or cancelled job goes back to pending."""
        return (await self.request("POST", _job(queue, job_id) + "/retry"))["status"]

    async def promote(self, queue: str, job_id: str) -> str:
        """``POST .../jobs/{id}/promote``: a scheduled job becomes pending now (``InvalidState`` otherwise)."""
        return (await self.request("POST", _job(queue, job_id) + "/promote"))["status"]

    async def bulk(self, queue: str, action: str, ids: Iterable[str]) -> BulkResult:
        """``POST .../jobs/bulk``: ``action`` ("retry", "cancel", "delete" or "promote") done to each job of
        ``ids`` (1 to 1,000) in turn, each as its single method would do it (``delete`` removes finished jobs).
        An item that cannot be done is reported in its result (``"ok": False`` with the error code the single
        method would raise) and does not stop the others. Not repeated when its answer is lost."""
        data = await self.request("POST", _jobs(queue) + "/bulk", json={"action": action, "ids": list(ids)})
        return BulkResult(results=data["results"], ok=data["ok"], errors=data["errors"])

    async def purge(self, queue: str, status: str) -> int:
        """``POST /api/v1/queues/{name}/purge``: removes every job of ``status`` (completed, failed, cancelled,
        pending or scheduled). Returns how many."""
        return int((await self.request("POST", _q(queue) + "/purge", json={"status": status}))["purged"])

    # -- workflows ------------------------------------------------------------------------------------------

    async def progress(
        self, queue: str, job_id: str, progress: float | Mapping[str, Any], *, lease_id: str | None
    ) -> str:
        """``PUT .../jobs/{id}/progress``: how far a claimed job got, a number or a JSON object of at most 64 KiB
        (``protocol.MAX_PROGRESS_BYTES``). Returns its status (``claimed``). Same 409s as ``complete``:
        ``LeaseLost``, ``NotClaimed``, ``JobCancelled``. Inside a ``Worker``'s handler, use ``job.progress``."""
        body = {"lease_id": lease_id, "progress": dict(progress) if isinstance(progress, Mapping) else progress}
        data = await self.request("PUT", _job(queue, job_id) + "/progress", json=body, safety=_by_lease(lease_id))
        return data["status"]

    async def wait(self, queue: str, job_id: str, timeout: float | None = None) -> Job:
        """Waits until the job has finished (completed, failed or cancelled) and returns it.

        After ``timeout`` seconds it returns the job **as it is then**, unfinished (check ``job.finished``); it
        does not raise. ``None`` waits as long as it takes; ``0`` reads the job once. The server holds each
        request up to ``protocol.MAX_WAIT_MS`` (``GET .../jobs/{id}?wait_ms=``), so a longer wait is several
        requests; a server that answers before its time (one shutting down does) is asked again after a pause.
        """
        loop_time = anyio.current_time
        deadline = None if timeout is None else loop_time() + max(timeout, 0.0)
        early = 0
        while True:
            left_ms = MAX_WAIT_MS if deadline is None else math.ceil(max(deadline - loop_time(), 0.0) * 1000)
            wait_ms = min(MAX_WAIT_MS, left_ms)
            asked = loop_time()
            job = await self._read_job(queue, job_id, wait_ms)
            now = loop_time()
            if job.finished or (deadline is not None and now >= deadline) or wait_ms == 0:
                return job
            if (now - asked) * 1000 < wait_ms / 2:
                # Answered early, unfinished: do not turn into a busy loop against a server that keeps doing so.
                pause = self.retry.backoff.delay(early)
                early += 1
                await anyio.sleep(pause if deadline is None else min(pause, max(deadline - now, 0.0)))
            else:
                early = 0

    async def _read_job(self, queue: str, job_id: str, wait_ms: int) -> Job:
        params = {"wait_ms": wait_ms} if wait_ms else None
        read = httpx.Timeout(self.timeout, read=self.timeout + wait_ms / 1000)
        data = await self.request("GET", _job(queue, job_id), params=params, safety=Safety.IDEMPOTENT, timeout=read)
        return Job.from_json(data)

    async def get_batch(self, queue: str, batch_id: str) -> Batch:
        """``GET .../batches/{id}``: a batch's counts and its callback job (``BatchNotFound`` if there is none, or
        its record was removed after the queue's retention)."""
        path = _q(queue) + "/batches/" + quote(batch_id, safe="")
        return Batch.from_json(await self.request("GET", path, safety=Safety.IDEMPOTENT))

    def events(self, queue: str, *, since: int | None = None, idle_timeout: float = 60.0) -> EventStream:
        """The queue's event stream (``GET .../events``), following it until closed or cancelled.

        ``since=None`` starts with the events from now on; ``since=n`` resumes after event ``n``, and ``0`` replays
        what the log still holds. Iterate it, preferably inside ``async with`` (which closes the connection the
        moment the block ends)::

            async with client.events("media", since=0) as stream:
                async for event in stream:
                    print(event.id, event.kind, event.data["job_id"])

        A lost connection is reopened from the last event seen (see the module docstring), so no event the log
        still holds is missed; ``idle_timeout`` is how long the stream may stay silent (no event, no keep-alive)
        before it counts as lost. A deleted queue ends it with ``QueueNotFound``. Events exist only while the
        queue's ``events`` setting is on.
        """
        return EventStream(self, queue, _q(queue) + "/events", since=since, idle_timeout=idle_timeout)

    # -- schedules ------------------------------------------------------------------------------------------

    async def create_schedule(
        self,
        queue: str,
        name: str,
        *,
        cron: str | None = None,
        every: int | None = None,
        timezone: str = "UTC",
        payload: Mapping[str, Any] | None = None,
        paused: bool = False,
        priority: int | None = None,
        **options: Unpack[JobOptions],
    ) -> Schedule:
        """``POST .../schedules``: submits a job each time it is due, by ``cron`` (5 fields, or 6 with seconds
        first, read in ``timezone``) or ``every`` seconds: exactly one of the two. Its jobs carry ``payload``
        (default ``{}``), ``priority`` and the job ``options`` given (``JobOptions``; ``None``: not sent).
        ``ScheduleExists`` if the queue has a schedule of that name."""
        check_keywords(options, JOB_OPTIONS, "StarqClient.create_schedule")
        body: dict[str, Any] = {"name": name, "timezone": timezone, "paused": paused}
        if cron is not None:
            body["cron"] = cron
        if every is not None:
            body["every"] = every
        if payload is not None:
            body["payload"] = dict(payload)
        if priority is not None:
            body["priority"] = priority
        body.update(job_options(options))
        return Schedule.from_json(await self.request("POST", _schedules(queue), json=body))

    async def list_schedules(self, queue: str) -> list[Schedule]:
        """``GET .../schedules``, by name."""
        data = await self.request("GET", _schedules(queue), safety=Safety.IDEMPOTENT)
        return [Schedule.from_json(s) for s in data["schedules"]]

    async def get_schedule(self, queue: str, name: str) -> Schedule:
        """``GET .../schedules/{name}``, with its next and last run (``ScheduleNotFound`` if there is none)."""
        return Schedule.from_json(await self.request("GET", _schedule(queue, name), safety=Safety.IDEMPOTENT))

    async def update_schedule(self, queue: str, name: str, **changes: Any) -> Schedule:
        """``PATCH .../schedules/{name}`` with the fields to change: cron, every, timezone, payload, paused,
        priority and the job options. Every change is sent as given: ``None`` removes a job option (``key=None``
        drops the key). Giving ``cron`` to an interval schedule (or ``every`` to a cron one) replaces the other.
        A change of its timing (or resuming it) moves its next run, counted from now."""
        unknown = sorted(set(changes) - set(SCHEDULE_FIELDS))
        if unknown:
            raise TypeError(f"not a schedule field: {', '.join(unknown)} (fields: {', '.join(SCHEDULE_FIELDS)})")
        body = dict(changes)
        if body.get("tags") is not None:
            body["tags"] = _tag_list(body["tags"])
        if body.get("payload") is not None:
            body["payload"] = dict(body["payload"])
        return Schedule.from_json(
            await self.request("PATCH", _schedule(queue, name), json=body, safety=Safety.IDEMPOTENT)
        )

    async def pause_schedule(self, queue: str, name: str) -> Schedule:
        """Pauses a schedule: it submits nothing (``next_run_at`` is ``""``) until resumed."""
        return await self.update_schedule(queue, name, paused=True)

    async def resume_schedule(self, queue: str, name: str) -> Schedule:
        """Resumes a paused schedule: its next run is counted from now (missed runs are not made up)."""
        return await self.update_schedule(queue, name, paused=False)

    async def delete_schedule(self, queue: str, name: str) -> dict[str, Any]:
        """``DELETE .../schedules/{name}``: the jobs it submitted stay."""
        return await self.request("DELETE", _schedule(queue, name))


def job_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The job options (``JobOptions``) among ``options`` that are given (not ``None``), as a submit's body or a
    schedule names them."""
    given = _given(options, JOB_OPTIONS)
    if "tags" in given:
        given["tags"] = _tag_list(given["tags"])
    return given


def dependency_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A job's dependencies among ``options`` (``SubmitOptions``) as a submit's body names them (those given)."""
    given = _given(options, ("depends_on", "on_dependency_failure"))
    if "depends_on" in given:
        if isinstance(given["depends_on"], str):
            raise TypeError(f"depends_on must be a list of job ids, not a string: write [{given['depends_on']!r}]")
        given["depends_on"] = list(given["depends_on"])
    return given


def _given(options: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: options[name] for name in names if options.get(name) is not None}


def _tag_list(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str):
        # A lone string is a sequence of characters: sixteen one-letter tags is never what was meant.
        raise TypeError(f"tags must be a list of strings, not a string ({tags!r}): write [{tags!r}]")
    return list(tags)


def _by_lease(lease_id: str | None) -> Safety:
    # Only a report that names its lease is answered the same way when repeated.
    return Safety.IDEMPOTENT if lease_id else Safety.UNSENT_ONLY


def _q(name: str) -> str:
    return "/api/v1/queues/" + quote(name, safe="")


def _jobs(queue: str) -> str:
    return _q(queue) + "/jobs"


def _job(queue: str, job_id: str) -> str:
    return _jobs(queue) + "/" + quote(job_id, safe="")


def _schedules(queue: str) -> str:
    return _q(queue) + "/schedules"


def _schedule(queue: str, name: str) -> str:
    return _schedules(queue) + "/" + quote(name, safe="")
