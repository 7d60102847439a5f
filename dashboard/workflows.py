"""What the job and batch pages show of workflows: the jobs a job waits for and those waiting for it, each with
its status; its progress as a bar when it reads as one; the batch a job belongs to and that batch's callback.

The engine has no read of several jobs' statuses at once, so each related job shown with its status costs one
``get_job`` round trip per snapshot (once a second while the page is open); ``RELATED_READ`` bounds that cost.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from starq.server.engine.engine import Engine
from starq.server.engine.models import JOB_ID_PATTERN
from starq.worker_kit.errors import JobNotFound

# The first this many dependencies, and as many dependents, are shown with their status (one round trip each).
RELATED_READ = 10
# At most this many ids of each list are shown at all (a job may have thousands of dependents); the page says
# how many more there are.
RELATED_SHOWN = 100
# What a related job whose record is gone (expired after the queue's retention, or purged) shows as its status.
REMOVED = "removed"
# How the engine names the dependency that cancelled a job, in the job's error ("dependency <id> was cancelled").
_FAILED_DEPENDENCY = re.compile(rf"dependency ({JOB_ID_PATTERN}) was ")
# Progress objects read as a bar: ``of`` (or ``total``) is the whole; ``done``, or else the one other number,
# is the part done.
PROGRESS_WHOLE = ("of", "total")
PROGRESS_DONE = "done"


async def related(engine: Engine, queue: str, ids: list[str]) -> list[dict[str, Any]]:
    """The first RELATED_SHOWN of ``ids`` as ``{"id", "status"}``: the status read for the first RELATED_READ
    (REMOVED when the record is gone), None for the others. Costs one round trip per status read."""
    shown: list[dict[str, Any]] = []
    for i, job_id in enumerate(ids[:RELATED_SHOWN]):
        status: str | None = None
        if i < RELATED_READ:
            try:
                status = (await engine.get_job(queue, job_id)).status
            except JobNotFound:
                status = REMOVED
        shown.append({"id": job_id, "status": status})
    return shown


def failed_dependency(error: str, depends_on: list[str]) -> str:
    """The dependency an error says cancelled the job (so the page can link it), or ""."""
    found = _FAILED_DEPENDENCY.match(error)
    return found.group(1) if found and found.group(1) in depends_on else ""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def progress_view(raw: str | None) -> dict[str, Any] | None:
    """A job's progress as the page shows it: ``json`` (its value as indented JSON text), and when it reads as
    a bar, ``done``, ``total`` and the ``unit`` of the count ("" for none). It reads as a bar when it is a number
    from 0 to 100 (a percentage: unit "%"), or an object with a positive number ``of`` or ``total`` and the part
    done: its number ``done``, or else its only other number, whose name is then the unit (``{"parts": 3, "of":
    10}``: 3 of 10 parts). None before any report."""
    if raw is None:
        return None
    value = orjson.loads(raw)
    shown: dict[str, Any] = {"json": orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()}
    if _number(value) and 0 <= value <= 100:
        shown.update(done=value, total=100, unit="%")
    elif isinstance(value, dict):
        wholes = [value[name] for name in PROGRESS_WHOLE if name in value]
        parts = [(name, v) for name, v in value.items() if name not in PROGRESS_WHOLE and _number(v)]
        if _number(value.get(PROGRESS_DONE)):
            parts = [(PROGRESS_DONE, value[PROGRESS_DONE])]
        if len(wholes) == 1 and _number(wholes[0]) and wholes[0] > 0 and len(parts) == 1:
            (name, done), total = parts[0], wholes[0]
            shown.update(done=done, total=total, unit="" if name == PROGRESS_DONE else name)
    return shown


async def batch_callback(engine: Engine, queue: str, callback_id: str) -> dict[str, Any] | None:
    """The callback job of a finished batch, if it is in the batch's queue: ``{"id", "status"}``; None when it
    is not there (it went to another queue, which the engine's batch does not name, or its record is gone).
    Costs one round trip."""
    try:
        return {"id": callback_id, "status": (await engine.get_job(queue, callback_id)).status}
    except JobNotFound:
        return None
