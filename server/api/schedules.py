"""Schedule operations: create, list, show, change (pause, resume) and delete a queue's schedules."""

from __future__ import annotations

import time
from typing import Any

from starq.worker_kit.errors import ValidationFailed

from .. import schedules
from ..engine.engine import ScheduleRecord
from ..engine.models import iso
from . import shapes
from .operations import Answer, AppState, Request, operation

TAG = "schedules"
S = "/api/v1/queues/{name}/schedules"
ONE = S + "/{schedule}"
# What a schedule's definition holds: every field of a schedule but its name.
DEFINITION = tuple(f.name for f in shapes.CreateSchedule.fields if f.name != "name")
# A change of any of these moves the next run (from now on).
TIMING = ("cron", "every", "timezone", "paused")


def render(record: ScheduleRecord) -> dict[str, Any]:
    definition = record.definition
    return {
        "name": record.name,
        "queue": record.queue,
        **{name: definition.get(name) for name in DEFINITION},
        "next_run_at": "" if definition.get("paused") else iso(record.next_ms),
        "last_run_at": record.last_run_at,
        "last_job_id": record.last_job_id,
        "created_at": record.created_at,
    }


def _now_ms() -> int:
    return int(time.time() * 1000)


@operation("POST", S, summary="Create a schedule: a cron expression or an interval that submits a job", tag=TAG,
           body=shapes.CreateSchedule, responses={201: shapes.Schedule, 409: shapes.Error})  # fmt: skip
async def create_schedule(st: AppState, req: Request) -> Answer:
    definition = {name: req.body[name] for name in DEFINITION}
    schedules.check(definition)
    name = req.body["name"]
    await st.engine.create_schedule(req.queue, name, definition, schedules.next_run_ms(definition, _now_ms()))
    (record,) = await st.engine.schedules(req.queue, name)
    return render(record), 201


@operation("GET", S, summary="List a queue's schedules, by name", tag=TAG, responses={200: shapes.ScheduleList})
async def list_schedules(st: AppState, req: Request) -> Answer:
    return {"schedules": [render(r) for r in await st.engine.schedules(req.queue)]}, 200


@operation("GET", ONE, summary="Show a schedule with its next and last run", tag=TAG,
           responses={200: shapes.Schedule})  # fmt: skip
async def get_schedule(st: AppState, req: Request) -> Answer:
    (record,) = await st.engine.schedules(req.queue, req.params["schedule"])
    return render(record), 200


@operation("PATCH", ONE, summary="Change a schedule (any field; paused: true pauses it)", tag=TAG,
           body=shapes.UpdateSchedule, responses={200: shapes.Schedule})  # fmt: skip
async def update_schedule(st: AppState, req: Request) -> Answer:
    name = req.params["schedule"]
    (record,) = await st.engine.schedules(req.queue, name)
    changes = req.body
    if changes.get("cron") is not None and changes.get("every") is not None:
        raise ValidationFailed("give exactly one of cron and every")
    definition = {**record.definition, **changes}
    # Switching between a cron expression and an interval replaces the other.
    if changes.get("cron") is not None:
        definition["every"] = None
    elif changes.get("every") is not None:
        definition["cron"] = None
    schedules.check(definition)
    next_ms = record.next_ms
    if any(key in changes for key in TIMING):
        next_ms = schedules.next_run_ms(definition, _now_ms())
    await st.engine.update_schedule(req.queue, name, definition, next_ms)
    (record,) = await st.engine.schedules(req.queue, name)
    return render(record), 200


@operation("DELETE", ONE, summary="Delete a schedule (its jobs stay)", tag=TAG,
           responses={200: shapes.ScheduleDeleted})  # fmt: skip
async def delete_schedule(st: AppState, req: Request) -> Answer:
    name = req.params["schedule"]
    await st.engine.delete_schedule(req.queue, name)
    return {"status": "deleted", "schedule": name}, 200
