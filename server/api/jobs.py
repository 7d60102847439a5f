"""Job operations: submit, claim (long-poll), complete, fail, extend, batch ack, bulk actions, cancel, retry,
show, list.

Each handler takes the checked request, calls one engine (or hub) method, and returns the answer's data and
status; ``service.py`` does everything around it.
"""

from __future__ import annotations

import operator
import time
from datetime import datetime
from typing import Any

import orjson

from starq.worker_kit.errors import QueueNotFound, TooLarge, UnknownDependency, ValidationFailed

from ..claims import Ledger
from ..engine.engine import dedupe_hash
from ..engine.models import NO_OPTIONS, Callback, Job, JobOptions, NewBatch, NewJob, iso, new_job_id, new_job_ids
from . import shapes
from .operations import PARKS, Answer, AppState, Request, job_id, operation

TAG = "jobs"
J = "/api/v1/queues/{name}/jobs"
JOB = J + "/{job}"


def encode_json(value: object, what: str, limit: int) -> str:
    text = orjson.dumps(value).decode()
    if len(text) > limit:
        raise TooLarge(f"{what} is {len(text)} bytes; the limit is {limit}")
    return text


def _due_ms(item: dict[str, Any], where: str) -> int:
    run_at, delay = item.get("run_at"), item.get("delay")
    if run_at is None:
        return int((time.time() + delay) * 1000) if delay else 0
    if delay is not None:
        # Either may be meant; neither is taken silently.
        raise ValidationFailed(f"{where}delay and {where}run_at cannot both be given: choose one")
    try:
        at = datetime.fromisoformat(run_at.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(f"{where}run_at must be an ISO 8601 time") from exc
    if at.tzinfo is None:
        raise ValidationFailed(f"{where}run_at must include a time zone (e.g. Z)")
    return int(at.timestamp() * 1000)


def _dependencies(item: dict[str, Any], where: str, index: int) -> tuple[str, ...]:
    """The job's depends_on, each "#i" checked to name an earlier job of the same submit."""
    deps = tuple(item.get("depends_on") or ())
    for j, dep in enumerate(deps):
        if dep.startswith("#") and int(dep[1:]) >= index:
            raise ValidationFailed(
                f"{where}depends_on[{j}] is {dep}: a job may depend only on an earlier job of its submit"
                if where
                else f"depends_on[{j}] is {dep}: one job submitted alone has no other job to refer to"
            )
    return deps


# The body fields that make a job's options; when none is given (the common case) every job shares NO_OPTIONS.
_OPTION_NAMES = (*(f.name for f in shapes.JOB_OPTIONS), "depends_on")
_given_options = operator.itemgetter(*_OPTION_NAMES)
_NONE_GIVEN = (None,) * len(_OPTION_NAMES)


def _new_job(item: dict[str, Any], where: str, limit: int, index: int = 0) -> tuple[NewJob, JobOptions]:
    payload = item.get("payload")
    if payload is None:
        raise ValidationFailed(f"{where}payload is required")
    if _given_options(item) == _NONE_GIVEN:
        options = NO_OPTIONS
    else:
        options = JobOptions.given(
            item,
            depends_on=_dependencies(item, where, index),
            on_dependency_failure=item.get("on_dependency_failure") or "cancel",
        )
    new = NewJob(
        payload=encode_json(payload, f"{where}payload", limit),
        priority=item["priority"],
        run_at_ms=_due_ms(item, where),
        dedupe_hash=dedupe_hash(payload),
        options=options.to_json(),
    )
    return new, options


def _result(value: Any, what: str, st: AppState) -> str:
    return encode_json(value if value is not None else {}, what, st.settings.max_payload_bytes)


async def _new_batch(st: AppState, queue: str, given: dict[str, Any] | None) -> NewBatch | None:
    """The batch a submit asks for, its callback's queue checked to exist."""
    if given is None:
        return None
    callback = given["callback"]
    if callback is None:
        return NewBatch(new_job_id())
    target = callback["queue"] or queue
    if target != queue:
        try:
            await st.engine.queue_info(target)
        except QueueNotFound:
            raise QueueNotFound(f"batch.callback.queue: there is no queue {target!r}") from None
    # "batch" is the engine's to add; a payload's own would be a second key of that name.
    payload = {k: v for k, v in callback["payload"].items() if k != "batch"}
    text = encode_json(payload, "batch.callback.payload", st.settings.max_payload_bytes)
    return NewBatch(new_job_id(), Callback(text, callback["priority"], target), new_job_id())


@operation("POST", J, summary="Submit one job or a batch (atomic)", tag=TAG, body=shapes.Submit,
           responses={201: shapes.Submitted, 413: shapes.Error})  # fmt: skip
async def submit(st: AppState, req: Request) -> Answer:
    body, queue = req.body, req.queue
    limit = st.settings.max_payload_bytes
    single = body["jobs"] is None
    if not single:
        if len(body["jobs"]) > st.settings.max_batch:
            raise TooLarge(f"{len(body['jobs'])} jobs in one request; the limit is {st.settings.max_batch}")
        given = [_new_job(item, f"jobs[{i}].", limit, i) for i, item in enumerate(body["jobs"])]
    elif body["payload"] is not None:
        given = [_new_job(body, "", limit)]
    else:
        raise ValidationFailed("payload (one job) or jobs (a batch) is required")
    jobs = [new for new, _ in given]
    batch = await _new_batch(st, queue, body["batch"])
    try:
        results = await st.engine.submit(queue, jobs, new_job_ids(len(jobs)), batch)
    except UnknownDependency as exc:
        if single:
            raise ValidationFailed(f"depends_on[{exc.index}]: no job {exc.job_id} in this queue") from None
        raise

    def resolved(deps: tuple[str, ...]) -> str:
        if not deps:
            return "[]"
        return orjson.dumps([results[int(d[1:])].id if d.startswith("#") else d for d in deps]).decode()

    batch_id = batch.id if batch else ""
    rendered = []
    for (new, options), result in zip(given, results, strict=True):
        fields = {
            "id": result.id,
            "status": result.status,
            "payload": new.payload,
            "priority": new.priority,
            "created_at": result.created_at,
            "run_at": iso(new.run_at_ms) if new.run_at_ms and result.status in ("scheduled", "waiting") else "",
            "batch_id": batch_id,
            "error": result.error,
        }
        if options is not NO_OPTIONS:  # the fields a job given no options shows empty anyway
            fields |= {
                "key": options.key or "",
                "unique_key": options.unique_key or "",
                "unique_for": options.unique_for,
                "timeout": options.timeout,
                "max_retries": options.max_retries,
                "tags": orjson.dumps(list(options.tags)).decode(),
                "depends_on": resolved(options.depends_on),
                "on_dependency_failure": options.on_dependency_failure if options.depends_on else "",
            }
        rendered.append(Job.new_json(queue, fields))
    skipped = sum(r.skipped for r in results)
    answer = {"jobs": rendered, "submitted": len(results) - skipped, "skipped": skipped}
    if batch is not None:
        answer["batch_id"] = batch.id
    return answer, 201


@operation("GET", J, summary="List jobs, newest first, filtered before paging", tag=TAG, query=shapes.ListQuery,
           responses={200: shapes.JobPage})  # fmt: skip
async def list_jobs(st: AppState, req: Request) -> Answer:
    q = req.query
    count = min(q["count"], st.settings.max_list_count)
    page = await st.engine.list_jobs(req.queue, q["status"], count, q["cursor"], tag=q["tag"], text=q["q"])
    return {"jobs": [j.to_json() for j in page.jobs], "cursor": page.cursor, "has_more": page.has_more}, 200


@operation("POST", J + "/claim", summary="Claim jobs, waiting up to block_ms for one", tag=TAG, body=shapes.Claim,
           responses={200: shapes.Claimed}, waits=PARKS)  # fmt: skip
async def claim(st: AppState, req: Request) -> Answer:
    body, settings = req.body, st.settings
    req.ledger = Ledger(waiting=req.waiting)
    started = time.perf_counter()
    jobs = await st.hub.claims.claim(
        req.queue,
        min(body["count"], settings.max_claim_count),
        min(body["block_ms"], settings.max_block_ms),
        body["worker"],
        req.ledger,
    )
    st.metrics.claim_waited(req.queue, bool(jobs), time.perf_counter() - started)
    return {"jobs": [j.to_json() for j in jobs]}, 200


@operation("GET", JOB, summary="Show a job (result, error, history, dependents); wait_ms awaits its outcome", tag=TAG,
           query=shapes.JobQuery, responses={200: shapes.Job}, waits="wait_ms")  # fmt: skip
async def get_job(st: AppState, req: Request) -> Answer:
    wait_ms = req.query["wait_ms"]
    if wait_ms:
        return (await st.hub.outcomes.wait(req.queue, req.job, wait_ms)).to_json(), 200
    return (await st.engine.get_job(req.queue, req.job)).to_json(), 200


@operation("PUT", JOB + "/complete", summary="Report a job done", tag=TAG, body=shapes.Complete,
           responses={200: shapes.Outcome, 409: shapes.Error})  # fmt: skip
async def complete(st: AppState, req: Request) -> Answer:
    body, job = req.body, req.job
    result = _result(body["result"], "result", st)
    status = await st.engine.complete(req.queue, job, body["lease_id"] or "", result)
    return {"status": status, "job_id": job}, 200


@operation("PUT", JOB + "/fail", summary="Report a job failed (retried with backoff, then dead)", tag=TAG,
           body=shapes.Fail, responses={200: shapes.FailOutcome, 409: shapes.Error})  # fmt: skip
async def fail(st: AppState, req: Request) -> Answer:
    body, job = req.body, req.job
    status, retries = await st.engine.fail(req.queue, job, body["lease_id"] or "", body["error"],
                                           body["retry"])  # fmt: skip
    return {"status": status, "job_id": job, "retries": retries}, 200


@operation("PUT", JOB + "/extend", summary="Extend a claimed job's lease (heartbeat)", tag=TAG, body=shapes.Extend,
           responses={200: shapes.Extended, 409: shapes.Error})  # fmt: skip
async def extend(st: AppState, req: Request) -> Answer:
    body, job = req.body, req.job
    expires = await st.engine.extend(req.queue, job, body["lease_id"] or "", body["seconds"])
    return {"status": "claimed", "job_id": job, "lease_expires_at": expires}, 200


@operation("POST", J + "/ack", summary="Complete and fail many jobs in one request", tag=TAG, body=shapes.Ack,
           responses={200: shapes.Acked})  # fmt: skip
async def ack(st: AppState, req: Request) -> Answer:
    body = req.body
    total = len(body["complete"]) + len(body["fail"])
    if total > st.settings.max_batch:
        raise TooLarge(f"{total} outcomes in one request; the limit is {st.settings.max_batch}")
    completes = [
        (job_id(c["id"]), c["lease_id"] or "", _result(c["result"], f"complete[{i}].result", st))
        for i, c in enumerate(body["complete"])
    ]
    fails = [(job_id(f["id"]), f["lease_id"] or "", f["error"], f["retry"]) for f in body["fail"]]
    outcomes = await st.engine.ack(req.queue, completes, fails)
    results = []
    for outcome in outcomes:
        if outcome.error is None:
            results.append({"job_id": outcome.id, "ok": True, "status": outcome.status, "retries": outcome.retries})
        else:
            results.append(
                {"job_id": outcome.id, "ok": False, "error": outcome.error.code, "detail": outcome.error.detail}
            )
    errors = [o.error for o in outcomes if o.error is not None]
    if outcomes and len(errors) == len(outcomes) and all(isinstance(e, QueueNotFound) for e in errors):
        raise errors[0]
    return {
        "results": results,
        "completed": sum(1 for o in outcomes[: len(completes)] if o.error is None),
        "failed": sum(1 for o in outcomes[len(completes) :] if o.error is None),
        "errors": len(errors),
    }, 200


@operation("POST", J + "/bulk", summary="Retry, cancel, promote or delete many jobs, each on its own", tag=TAG,
           body=shapes.Bulk, responses={200: shapes.BulkDone})  # fmt: skip
async def bulk(st: AppState, req: Request) -> Answer:
    ids = req.body["ids"]
    outcomes = await st.engine.bulk(req.queue, req.body["action"], ids)
    results: list[dict[str, Any]] = [
        {"job_id": o.id, "ok": True, "status": o.status}
        if o.error is None
        else {"job_id": o.id, "ok": False, "error": o.error.code, "detail": o.error.detail}
        for o in outcomes
    ]
    errors = sum(1 for o in outcomes if o.error is not None)
    return {"results": results, "ok": len(outcomes) - errors, "errors": errors}, 200


@operation("DELETE", JOB, summary="Cancel a pending, scheduled or claimed job", tag=TAG,
           responses={200: shapes.Outcome, 409: shapes.Error})  # fmt: skip
async def cancel(st: AppState, req: Request) -> Answer:
    job = req.job
    return {"status": await st.engine.cancel(req.queue, job), "job_id": job}, 200


@operation("POST", JOB + "/retry", summary="Put a dead or cancelled job back to pending", tag=TAG,
           responses={200: shapes.Outcome, 409: shapes.Error})  # fmt: skip
async def retry(st: AppState, req: Request) -> Answer:
    job = req.job
    return {"status": await st.engine.retry(req.queue, job), "job_id": job}, 200


@operation("POST", JOB + "/release", summary="Give a claimed job back without counting an attempt", tag=TAG,
           body=shapes.Release, responses={200: shapes.Outcome, 409: shapes.Error})  # fmt: skip
async def release(st: AppState, req: Request) -> Answer:
    body, job = req.body, req.job
    status = await st.engine.release(req.queue, job, body["lease_id"] or "", body["delay"])
    return {"status": status, "job_id": job}, 200


@operation("POST", JOB + "/promote", summary="Make a scheduled job pending now", tag=TAG,
           responses={200: shapes.Outcome, 409: shapes.Error})  # fmt: skip
async def promote(st: AppState, req: Request) -> Answer:
    job = req.job
    return {"status": await st.engine.promote(req.queue, job), "job_id": job}, 200
