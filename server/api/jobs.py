"""Job endpoints: submit, claim (long-poll), complete, fail, extend, batch ack, cancel, retry, show, list."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import attrs
import orjson
from quart import Blueprint, Response, request

from ..claims import Ledger
from ..engine.engine import dedupe_hash
from ..engine.errors import QueueNotFound, TooLarge, ValidationFailed
from ..engine.models import Job, NewJob, iso, new_job_id
from . import shapes
from .delivery import SCOPE_KEY
from .http import AppState, job_id, json_response, queue_name, read_body, route, rule_of, state
from .schema import Schema

bp = Blueprint("jobs", __name__)
TAG = "jobs"
J = "/api/v1/queues/{name}/jobs"


def _encode(value: object, what: str, limit: int) -> str:
    text = orjson.dumps(value).decode()
    if len(text) > limit:
        raise TooLarge(f"{what} is {len(text)} bytes; the limit is {limit}")
    return text


def _due_ms(item: dict, where: str) -> int:
    if item.get("run_at") is not None and item.get("delay") is not None:
        # Either may be meant; neither is taken silently.
        raise ValidationFailed(f"{where}delay and {where}run_at cannot both be given: choose one")
    if item.get("run_at") is not None:
        try:
            at = datetime.fromisoformat(item["run_at"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationFailed(f"{where}run_at must be an ISO 8601 time") from exc
        if at.tzinfo is None:
            raise ValidationFailed(f"{where}run_at must include a time zone (e.g. Z)")
        return int(at.timestamp() * 1000)
    if item.get("delay"):
        return int((time.time() + item["delay"]) * 1000)
    return 0


def _new_job(item: dict, where: str, limit: int) -> NewJob:
    if item.get("payload") is None:
        raise ValidationFailed(f"{where}payload is required")
    payload = _encode(item["payload"], f"{where}payload", limit)
    return NewJob(
        payload=payload,
        priority=item["priority"],
        run_at_ms=_due_ms(item, where),
        dedupe_hash=dedupe_hash(item["payload"]),
    )


# -- the hot routes ------------------------------------------------------------------------------------------
# Submit, claim, complete, fail and ack are what workers call in a loop. Each has a core that takes the parsed
# request (queue name and job id already checked, body already validated against its schema) and returns the
# answer's data and status; the Quart view and ``fastpath.HotPath`` both call it, so the two cannot differ.

Core = Callable[[AppState, dict, str, Any, dict], Awaitable[tuple[Any, int]]]


@attrs.frozen
class HotRoute:
    method: str
    path: str  # as in the OpenAPI document
    schema: Schema
    run: Core
    # The Quart rule, the label of the route's HTTP metrics (worked out once: it is read on every request).
    rule: str = attrs.field(init=False, default=attrs.Factory(lambda self: rule_of(self.path), takes_self=True))


def _ledger(scope: dict) -> Ledger:
    """The request's delivery ledger (a fresh, unguarded one when the app runs without the guard)."""
    ledger = scope.get(SCOPE_KEY)
    if ledger is None:
        ledger = scope[SCOPE_KEY] = Ledger()
    return ledger


async def _serve(hot: HotRoute, name: str, job: str | None = None) -> Response:
    """The Quart view of a hot route: the checks in the same order as ``fastpath.HotPath``."""
    name = queue_name(name)
    if job is not None:
        job = job_id(job)
    body = await read_body(hot.schema)
    data, status = await hot.run(state(), request.scope, name, job, body)
    return json_response(data, status)


async def _submit(st: AppState, scope: dict, name: str, job: None, body: dict) -> tuple[Any, int]:
    settings = st.settings
    limit = settings.max_payload_bytes
    if body["jobs"] is not None:
        if len(body["jobs"]) > settings.max_batch:
            raise TooLarge(f"{len(body['jobs'])} jobs in one request; the limit is {settings.max_batch}")
        if not body["jobs"]:
            raise ValidationFailed("jobs must hold at least one job")
        jobs = [_new_job(item, f"jobs[{i}].", limit) for i, item in enumerate(body["jobs"])]
    elif body["payload"] is not None:
        jobs = [_new_job(body, "", limit)]
    else:
        raise ValidationFailed("payload (one job) or jobs (a batch) is required")
    ids = [new_job_id() for _ in jobs]
    results = await st.engine.submit(name, jobs, ids)
    rendered = []
    for new, result in zip(jobs, results):
        rendered.append(
            Job.new(
                name,
                id=result.id,
                status=result.status,
                payload=new.payload,
                priority=new.priority,
                created_at=result.created_at,
                run_at="" if result.status != "scheduled" else iso(new.run_at_ms),
            ).to_json()
        )
    skipped = sum(r.skipped for r in results)
    return {"jobs": rendered, "submitted": len(results) - skipped, "skipped": skipped}, 201


async def _claim(st: AppState, scope: dict, name: str, job: None, body: dict) -> tuple[Any, int]:
    settings = st.settings
    block_ms = min(body["block_ms"], settings.max_block_ms)
    count = min(body["count"], settings.max_claim_count)
    jobs = await st.broker.claim(name, count, block_ms, body["worker"], _ledger(scope))
    return {"jobs": [j.to_json() for j in jobs]}, 200


async def _complete(st: AppState, scope: dict, name: str, job: str, body: dict) -> tuple[Any, int]:
    result = _encode(body["result"] if body["result"] is not None else {}, "result", st.settings.max_payload_bytes)
    status = await st.engine.complete(name, job, body["lease_id"] or "", result)
    return {"status": status, "job_id": job}, 200


async def _fail(st: AppState, scope: dict, name: str, job: str, body: dict) -> tuple[Any, int]:
    status, retries = await st.engine.fail(name, job, body["lease_id"] or "", body["error"], body["retry"])
    return {"status": status, "job_id": job, "retries": retries}, 200


async def _ack(st: AppState, scope: dict, name: str, job: None, body: dict) -> tuple[Any, int]:
    settings = st.settings
    limit = settings.max_payload_bytes
    total = len(body["complete"]) + len(body["fail"])
    if total > settings.max_batch:
        raise TooLarge(f"{total} outcomes in one request; the limit is {settings.max_batch}")
    completes = [
        (
            job_id(c["id"]),
            c["lease_id"] or "",
            _encode(c["result"] if c["result"] is not None else {}, f"complete[{i}].result", limit),
        )
        for i, c in enumerate(body["complete"])
    ]
    fails = [(job_id(f["id"]), f["lease_id"] or "", f["error"], f["retry"]) for f in body["fail"]]
    outcomes = await st.engine.ack(name, completes, fails)
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


HOT_ROUTES = {
    "submit": HotRoute("POST", J, shapes.Submit, _submit),
    "claim": HotRoute("POST", J + "/claim", shapes.Claim, _claim),
    "complete": HotRoute("PUT", J + "/{job}/complete", shapes.Complete, _complete),
    "fail": HotRoute("PUT", J + "/{job}/fail", shapes.Fail, _fail),
    "ack": HotRoute("POST", J + "/ack", shapes.Ack, _ack),
}


@route(
    bp,
    "POST",
    J,
    summary="Submit one job or a batch (atomic)",
    tag=TAG,
    body=shapes.Submit,
    responses={201: shapes.Submitted, 413: shapes.Error},
)
async def submit(name: str) -> Response:
    return await _serve(HOT_ROUTES["submit"], name)


@route(
    bp,
    "GET",
    J,
    summary="List jobs, newest first, filtered before paging",
    tag=TAG,
    responses={200: shapes.JobPage},
    query=shapes.ListQuery,
)
async def list_jobs(name: str) -> Response:
    name = queue_name(name)
    args = {}
    for field in shapes.ListQuery:
        raw = request.args.get(field.name)
        if raw is None:
            args[field.name] = field.default
        elif field.type == "integer":
            try:
                args[field.name] = field.check(int(raw), field.name)
            except ValueError:
                raise ValidationFailed(f"{field.name} must be an integer") from None
        else:
            args[field.name] = field.check(raw, field.name)
    jobs, has_more = await state().engine.list_jobs(name, args["status"], args["count"], args["cursor"])
    cursor = jobs[-1].id if has_more and jobs else ""
    return json_response({"jobs": [j.to_json() for j in jobs], "cursor": cursor, "has_more": has_more})


@route(
    bp,
    "POST",
    J + "/claim",
    summary="Claim jobs, waiting up to block_ms for one",
    tag=TAG,
    body=shapes.Claim,
    responses={200: shapes.Claimed},
)
async def claim(name: str) -> Response:
    return await _serve(HOT_ROUTES["claim"], name)


@route(bp, "GET", J + "/{job}", summary="Show a job with its result or error", tag=TAG, responses={200: shapes.Job})
async def get_job(name: str, job: str) -> Response:
    return json_response((await state().engine.get_job(queue_name(name), job_id(job))).to_json())


@route(
    bp,
    "PUT",
    J + "/{job}/complete",
    summary="Report a job done",
    tag=TAG,
    body=shapes.Complete,
    responses={200: shapes.Outcome, 409: shapes.Error},
)
async def complete(name: str, job: str) -> Response:
    return await _serve(HOT_ROUTES["complete"], name, job)


@route(
    bp,
    "PUT",
    J + "/{job}/fail",
    summary="Report a job failed (retried with backoff, then dead)",
    tag=TAG,
    body=shapes.Fail,
    responses={200: shapes.FailOutcome, 409: shapes.Error},
)
async def fail(name: str, job: str) -> Response:
    return await _serve(HOT_ROUTES["fail"], name, job)


@route(
    bp,
    "PUT",
    J + "/{job}/extend",
    summary="Extend a claimed job's lease (heartbeat)",
    tag=TAG,
    body=shapes.Extend,
    responses={200: shapes.Extended, 409: shapes.Error},
)
async def extend(name: str, job: str) -> Response:
    name, job = queue_name(name), job_id(job)
    body = await read_body(shapes.Extend)
    expires = await state().engine.extend(name, job, body["lease_id"] or "", body["seconds"])
    return json_response({"status": "claimed", "job_id": job, "lease_expires_at": expires})


@route(
    bp,
    "POST",
    J + "/ack",
    summary="Complete and fail many jobs in one request",
    tag=TAG,
    body=shapes.Ack,
    responses={200: shapes.Acked},
)
async def ack(name: str) -> Response:
    return await _serve(HOT_ROUTES["ack"], name)


@route(
    bp,
    "DELETE",
    J + "/{job}",
    summary="Cancel a pending or scheduled job",
    tag=TAG,
    responses={200: shapes.Outcome, 409: shapes.Error},
)
async def cancel(name: str, job: str) -> Response:
    name, job = queue_name(name), job_id(job)
    return json_response({"status": await state().engine.cancel(name, job), "job_id": job})


@route(
    bp,
    "POST",
    J + "/{job}/retry",
    summary="Put a dead or cancelled job back to pending",
    tag=TAG,
    responses={200: shapes.Outcome, 409: shapes.Error},
)
async def retry(name: str, job: str) -> Response:
    name, job = queue_name(name), job_id(job)
    return json_response({"status": await state().engine.retry(name, job), "job_id": job})
