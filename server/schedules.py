"""Schedules: when each one runs next, and the job each run submits.

A schedule is a cron expression (5 fields, or 6 with seconds first: ``*/2 * * * * *`` is every two seconds) read
by croniter in the schedule's IANA time zone (daylight saving time as croniter defines it), or an interval of
``every`` whole seconds. The store keeps each schedule's next due time; the maintenance loop runs the due ones
(``run_due``), each run one atomic step in the store, so any number of server processes make exactly one job
per due time. A run that was missed while no server ran is made once, late; the next run is then the first due
time after now, so a long outage never turns into a flood.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from croniter import croniter

from starq.worker_kit.errors import StarqError, ValidationFailed

from .engine.engine import DueSchedule, Engine, dedupe_hash
from .engine.models import JobOptions, NewJob, new_job_id

log = logging.getLogger("starq.schedules")

# The job options a schedule may give its jobs, as the submit body names them.
JOB_OPTIONS = ("priority", "key", "unique_key", "unique_for", "timeout", "max_retries", "tags")


def check(definition: dict[str, Any]) -> None:
    """Raises ValidationFailed naming the field when the definition cannot be scheduled."""
    cron, every = definition.get("cron"), definition.get("every")
    if (cron is None) == (every is None):
        raise ValidationFailed("give exactly one of cron and every")
    try:
        ZoneInfo(definition.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"timezone {definition.get('timezone')!r} is not a known IANA time zone") from None
    if cron is not None:
        fields = cron.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(cron, second_at_beginning=len(fields) == 6):
            raise ValidationFailed(
                f"cron {cron!r} is not a valid expression: 5 fields (minute hour day month weekday), or 6 with "
                "seconds first"
            )


def next_run_ms(definition: dict[str, Any], after_ms: int, anchor_ms: int | None = None) -> int:
    """The schedule's first due time after ``after_ms``. An interval counts from ``anchor_ms`` (its last due
    time), so its runs keep their rhythm."""
    every = definition.get("every")
    if every is not None:
        step = int(every) * 1000
        if anchor_ms is None or anchor_ms > after_ms:
            return after_ms + step
        return anchor_ms + ((after_ms - anchor_ms) // step + 1) * step
    cron = definition["cron"]
    zone = ZoneInfo(definition.get("timezone") or "UTC")
    start = datetime.fromtimestamp(after_ms / 1000, UTC).astimezone(zone)
    following = croniter(cron, start, second_at_beginning=len(cron.split()) == 6).get_next(datetime)
    return int(following.timestamp() * 1000)


def job_of(definition: dict[str, Any]) -> NewJob:
    """The job a run submits: the schedule's payload and job options."""
    payload = definition.get("payload") or {}
    return NewJob(
        payload=orjson.dumps(payload).decode(),
        priority=definition.get("priority") or 0,
        dedupe_hash=dedupe_hash(payload),
        options=JobOptions.given(definition).to_json(),
    )


async def run_due(engine: Engine, queue: str, due: list[DueSchedule], now_ms: int) -> int:
    """Runs the schedules found due; returns how many ran here (another process may have run one first)."""
    ran = 0
    for schedule in due:
        try:
            following = next_run_ms(schedule.definition, now_ms, anchor_ms=schedule.due_ms)
            if await engine.run_schedule(queue, schedule, following, job_of(schedule.definition), new_job_id()):
                ran += 1
        except StarqError as exc:
            log.warning("schedule %s of queue %s did not run: %s", schedule.name, queue, exc.detail)
    return ran
