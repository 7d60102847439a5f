"""What each dashboard page shows, read through the engine's public methods and shaped as plain JSON.

A snapshot is everything one page needs at one moment. The live stream sends a page a new snapshot whenever
it differs from the last one sent, and the page's first render uses the same snapshot, so the server and the
browser never disagree about what a page shows. Each function documents how many store round trips it costs,
because an open dashboard pays that once a second (see ``live.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from starq.server.api import shapes
from starq.server.api.schedules import render as render_schedule
from starq.server.engine.engine import SCAN_BUDGET, Engine, ScheduleRecord, Throughput
from starq.server.engine.models import STATUSES, Job, QueueInfo
from starq.worker_kit.errors import QueueNotFound
from starq.worker_kit.protocol import FINISHED_STATUSES

from . import workflows

VIEWS = ("overview", "queue", "job", "batch")
JOB_STATUSES = STATUSES
# A job in one of these has finished (it can no longer be cancelled; a batch counts it as done).
FINISHED = FINISHED_STATUSES
# The counts an overview card shows: every status but cancelled, for which a card has no room (the queue page
# shows it).
CARD_STATUSES = tuple(s for s in STATUSES if s != "cancelled")
# Buckets of the engine's 5-second throughput ring: a 5-minute sparkline per card, and the queue page's chart over
# the range the page chose (the ring holds an hour). The first range is the default.
SPARK_BUCKETS = 60
CHART_RANGES = {"15m": (180, "15 min"), "1h": (720, "1 h")}  # name: (buckets, label)
# The queue page's search goes through the engine's list_jobs, as the API's ``GET …/jobs?q=`` does, within the
# API's own limit on the text.
SEARCH_MAX_LENGTH: int = next(f.max_length or 0 for f in shapes.ListQuery.fields if f.name == "q")
SEARCH_BUDGET = SCAN_BUDGET  # jobs looked at per page of a search
# The queue page's job table shows this many of the newest jobs live; older pages load on demand.
TABLE_ROWS = 50
# The wait-time view plots the time from submission to (last) claim of this many recently completed jobs.
WAIT_SAMPLE = 100
# The job fields a row of the job table shows as they are (payload and error come cut to PREVIEW_CHARS, tags
# decoded).
ROW_FIELDS = ("id", "status", "priority", "retries", "created_at", "claimed_at", "completed_at", "run_at", "worker")
# The job options the job page shows besides the row's fields (tags come decoded).
OPTION_FIELDS = ("key", "unique_key", "unique_for", "timeout", "max_retries", "schedule", "on_dependency_failure",
                 "batch_id")  # fmt: skip
# Long text in tables is cut to this many characters; the job page shows it whole.
PREVIEW_CHARS = 160


def queue_summary(info: QueueInfo) -> dict[str, Any]:
    """A queue's settings, counts and state as the pages show them."""
    return {
        "name": info.name,
        "description": info.settings["description"],
        "settings": dict(info.settings),
        "paused": info.paused,
        "created_at": info.created_at,
        "counts": dict(info.counts),
        "oldest_pending_at": info.oldest_pending_at,
        "workers": info.workers,
    }


def _series(engine_throughput: Throughput) -> dict[str, Any]:
    """Counts per bucket, oldest first, the last bucket being the current one. No timestamps: they would make
    an idle queue's snapshot change every bucket, and the page only needs positions relative to now."""
    buckets = engine_throughput.buckets
    return {
        "bucket_seconds": engine_throughput.bucket_seconds,
        "completed": [c for _, c, _ in buckets],
        "failed": [f for _, _, f in buckets],
    }


async def overview(engine: Engine) -> dict[str, Any]:
    """Every queue with its counts and a throughput sparkline. Costs 2 + N round trips for N queues."""
    cards = []
    for info in await engine.list_queues():
        try:
            spark = _series(await engine.throughput(info.name, SPARK_BUCKETS))
        except QueueNotFound:
            continue  # deleted between the listing and now
        cards.append({**queue_summary(info), "throughput": spark})
    return {"view": "overview", "queues": cards}


def _cut(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def job_row(job: Job) -> dict[str, Any]:
    """One line of the job table: times, status, tags and short previews of payload and error."""
    f = job.fields
    return {
        **{name: f[name] for name in ROW_FIELDS},
        "tags": orjson.loads(f["tags"]),
        "payload": _cut(job.payload),
        "error": _cut(job.error),
    }


def schedule_row(record: ScheduleRecord) -> dict[str, Any]:
    """One schedule as the API shows it (``next_run_at`` is "" while paused), its payload cut to a preview."""
    shown = render_schedule(record)
    shown["payload"] = _cut(orjson.dumps(shown["payload"] or {}).decode())
    del shown["queue"]
    return shown


def _seconds_between(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    begun = datetime.fromisoformat(start.replace("Z", "+00:00"))
    ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return round((ended - begun).total_seconds(), 3)


def wait_times(completed: list[Job]) -> list[dict[str, Any]]:
    """How long recently completed jobs waited: from submission to the claim that completed them (a delayed
    job's wait includes its delay; a retried job's includes its earlier attempts)."""
    points = []
    for job in completed:
        wait = _seconds_between(job.created_at, job.claimed_at)
        if wait is not None:
            points.append({"at": job.claimed_at, "wait": max(wait, 0.0)})
    return points


async def queue_page(
    engine: Engine, name: str, status: str = "", text: str = "", chart_range: str = "15m"
) -> dict[str, Any]:
    """Counts and settings, a throughput chart over ``chart_range`` (a key of CHART_RANGES), wait times, recent
    workers, the schedules and the newest jobs of one status (or all) that match the search ``text`` (or all).

    Costs 6 round trips (queue info, throughput, workers, schedules, one page of jobs, recent completions); the
    schedules' one reads every schedule of the queue (a ZRANGE and one HMGET per schedule, inside one FCALL).
    With a search, the page of jobs is the API's search: it looks at up to the engine's scan budget of jobs and
    reads each one's payload and error, so a page open on a search costs that once a second.
    Raises QueueNotFound when the queue does not exist.
    """
    info = await engine.queue_info(name)
    chart = await engine.throughput(name, CHART_RANGES[chart_range][0])
    seen = await engine.workers(name)
    schedules = await engine.schedules(name)
    page = await engine.list_jobs(name, status, TABLE_ROWS, text=text)
    completed = (await engine.list_jobs(name, "completed", WAIT_SAMPLE)).jobs
    return {
        "view": "queue",
        "queue": queue_summary(info),
        "throughput": {**_series(chart), "range": chart_range},
        "waits": wait_times(completed),
        "workers": [{"name": w.name, "last_seen": w.last_seen, "jobs_in_hand": w.jobs_in_hand} for w in seen],
        "schedules": [schedule_row(r) for r in schedules],
        "jobs": {
            "status": status,
            "q": text,
            "rows": [job_row(j) for j in page.jobs],
            "cursor": page.cursor,
            "has_more": page.has_more,
        },
    }


def _pretty(raw: str | None) -> str:
    """JSON text indented for reading; the text as it is if it is not JSON."""
    if raw is None:
        return ""
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return raw


async def job_page(engine: Engine, queue: str, job_id: str) -> dict[str, Any]:
    """One job: its fields and options, payload and result formatted as JSON, error and history, its progress,
    and the jobs it depends on and that depend on it, with their statuses.

    Costs 1 round trip, plus one per related job shown with its status (at most ``workflows.RELATED_READ``
    dependencies and as many dependents). Raises QueueNotFound or JobNotFound."""
    job = await engine.get_job(queue, job_id)
    depends_on: list[str] = orjson.loads(job.fields["depends_on"])
    dependents = job.dependents or []
    return {
        "view": "job",
        "job": {
            **job_row(job),
            **{name: job.fields[name] for name in OPTION_FIELDS},
            "queue": queue,
            "payload": _pretty(job.payload),
            "result": _pretty(job.result),
            "error": job.error,
            "error_dependency": workflows.failed_dependency(job.error, depends_on),
            "lease_id": job.lease_id,
            "lease_expires_at": job.fields["lease_expires_at"],
            "history": job.history or [],
            "progress": workflows.progress_view(job.fields["progress"]),
            "depends_on": await workflows.related(engine, queue, depends_on),
            "depends_on_total": len(depends_on),
            "dependents": await workflows.related(engine, queue, dependents),
            "dependents_total": len(dependents),
        },
    }


async def batch_page(engine: Engine, queue: str, batch_id: str) -> dict[str, Any]:
    """One batch: its counts, whether and when it finished, and its callback job once it is submitted. Costs 1
    round trip, 2 once the batch has finished with a callback. Raises QueueNotFound or BatchNotFound."""
    batch = await engine.get_batch(queue, batch_id)
    callback = None
    if batch.finished and batch.callback_job_id:
        callback = await workflows.batch_callback(engine, queue, batch.callback_job_id)
    return {"view": "batch", "batch": {**batch.to_json(), "queue": queue, "callback": callback}}
