"""Every request and response body of the API, declared with ``schema.Field``."""

from __future__ import annotations

import attrs

from starq.worker_kit.protocol import (
    BULK_ACTIONS,
    DEPENDENCY_FAILURE_CHOICES,
    EVENT_KINDS,
    JOB_STATUSES,
    MAX_BLOCK_MS,
    MAX_BULK_IDS,
    MAX_CLAIM_COUNT,
    MAX_DELAY,
    MAX_DEPENDENCIES,
    MAX_JOB_TIMEOUT,
    MAX_KEY_LENGTH,
    MAX_PRIORITY,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_UNIQUE_FOR,
    MAX_WAIT_MS,
    QUEUE_SETTINGS,
)

from ..engine.models import JOB_FIELDS, JOB_ID_PATTERN, STATUSES
from .operations import JOB_ID_TEXT, QUEUE_NAME_MAX, QUEUE_NAME_PATTERN
from .schema import ABSENT, Field, Schema

# Limits that are part of the schema itself; size limits (bytes, batch size) come from Settings.
MAX_CLAIM_TIMEOUT = next(s.maximum for s in QUEUE_SETTINGS if s.name == "claim_timeout")
MAX_WORKER_NAME = 128
MAX_ERROR_TEXT = 64 * 1024

RateLimit = Schema(
    "RateLimit",
    (
        Field("max", "integer", description="Jobs handed out per window.", minimum=1, maximum=1_000_000),
        Field(
            "per_ms",
            "integer",
            description="The window, in ms; it starts at its first hand-out.",
            minimum=1,
            maximum=86_400_000,
        ),
    ),
)
# The fields of the queue settings that are objects (null: none).
OBJECT_SETTINGS = {"rate_limit": RateLimit}

# The queue settings, as protocol.QUEUE_SETTINGS declares them.
_settings = tuple(
    Field(
        s.name,
        s.type,
        s.default,
        s.description,
        minimum=s.minimum,
        maximum=s.maximum,
        max_length=s.max_length,
        nullable=s.type == "object",
        shape=OBJECT_SETTINGS.get(s.name),
    )
    for s in QUEUE_SETTINGS
)
CreateQueue = Schema(
    "CreateQueue",
    (
        Field("name", "string", description="Queue name.", max_length=QUEUE_NAME_MAX, pattern=QUEUE_NAME_PATTERN),
        *_settings,
    ),
)
# Only the settings given change (null leaves a setting as it is, except an object's: null removes it).
UpdateQueue = Schema(
    "UpdateQueue",
    tuple(attrs.evolve(f, default=ABSENT, nullable=True) for f in _settings),
)
QueueInfo = Schema(
    "QueueInfo",
    (
        Field("name", "string"),
        *(Field(f.name, f.type, description=f.description, nullable=f.nullable) for f in _settings),
        *(Field(s, "integer", description=f"Jobs {s} now.") for s in STATUSES),
        Field("paused", "boolean", description="A paused queue hands out no jobs."),
        Field("created_at", "string"),
        Field("oldest_pending_at", "string", description='When the oldest pending job was submitted ("" if none).'),
        Field("workers", "integer", description="Workers that claimed from the queue in the last hour."),
        Field("held_by_key", "integer", description="Pending jobs waiting for their key's turn (key_concurrency)."),
    ),
)
QueueList = Schema("QueueList", (Field("queues", "array", items=QueueInfo),))
QueueDeleted = Schema("QueueDeleted", (Field("status", "string"), Field("queue", "string")))
Retried = Schema("Retried", (Field("status", "string"), Field("queue", "string"), Field("retried", "integer")))

# A job, as models.JOB_FIELDS declares its fields.
Job = Schema(
    "Job",
    (
        Field("id", "string"),
        Field("queue", "string"),
        *(
            Field(
                f.name,
                f.type,
                description=f.description,
                enum=STATUSES if f.name == "status" else None,
                nullable=f.type is None,
            )
            for f in JOB_FIELDS
            if f.name != "id"
        ),
        Field(
            "history",
            "array",
            None,
            "Only on GET of one job: its events, oldest first ({at, event, lease?, "
            "worker?, error?, status?}); at most the last 50.",
            nullable=True,
        ),
        Field("dependents", "array", None, "Only on GET of one job: the jobs that depend on it, oldest first.",
              nullable=True, items=Field("id", "string")),
    ),
)  # fmt: skip
# A job's options (on submit, and as a schedule gives them to its jobs); echoed in the job.
JOB_OPTIONS = (
    Field("key", "string", None, "The job's ordering and concurrency group (see the queue's key_concurrency).",
          max_length=MAX_KEY_LENGTH, nullable=True),
    Field("unique_key", "string", None, "Skip this job while a job holding this key is unfinished (or, with "
          "unique_for, was submitted less than unique_for seconds ago).", max_length=MAX_KEY_LENGTH, nullable=True),
    Field("unique_for", "integer", None, "Seconds unique_key is held from submission, whatever becomes of the job.",
          minimum=1, maximum=MAX_UNIQUE_FOR, nullable=True),
    Field("timeout", "integer", None, "Seconds one attempt may run; then it fails (and is retried as any failure).",
          minimum=1, maximum=MAX_JOB_TIMEOUT, nullable=True),
    Field("max_retries", "integer", None, "This job's retries (default: the queue's).", minimum=0, maximum=1000,
          nullable=True),
    Field("tags", "array", None, "Labels to list jobs by (GET …/jobs?tag=).", max_items=MAX_TAGS, nullable=True,
          items=Field("tag", "string", max_length=MAX_TAG_LENGTH, pattern=r".+", pattern_hint="a non-empty string")),
)  # fmt: skip
# A dependency: a job id of the queue, or "#<i>" for item i of the same submit (JOB_ID_PATTERN is anchored by
# fullmatch).
DEPENDENCY_PATTERN = f"{JOB_ID_PATTERN}|#[0-9]{{1,5}}"
DEPENDENCIES = (
    Field(
        "depends_on",
        "array",
        None,
        "Jobs of the queue this one waits for (status waiting until all have "
        'completed): job ids, or "#i" for item i of the same submit (an earlier one).',
        nullable=True,
        max_items=MAX_DEPENDENCIES,
        items=Field(
            "dependency",
            "string",
            max_length=64,
            pattern=DEPENDENCY_PATTERN,
            pattern_hint='a job id, or "#<index>" of an earlier job of the same submit',
        ),
    ),
    Field(
        "on_dependency_failure",
        "string",
        DEPENDENCY_FAILURE_CHOICES[0],
        'A dependency dead-lettered or cancelled: "cancel" this job too (saying which), or "run" it anyway.',
        enum=DEPENDENCY_FAILURE_CHOICES,
    ),
)
NewJob = Schema(
    "NewJob",
    (
        Field("payload", "object", description="The job's data: any JSON object."),
        Field("priority", "integer", 0, "0-9; higher is claimed first, FIFO within a priority.", minimum=0,
              maximum=MAX_PRIORITY),
        Field("delay", "number", None, "Seconds to wait before the job becomes ready (not with run_at).", minimum=0,
              maximum=MAX_DELAY, nullable=True),
        Field("run_at", "string", None, "ISO 8601 time at which the job becomes ready (not with delay).",
              nullable=True, max_length=64, format="date-time"),
        *JOB_OPTIONS,
        *DEPENDENCIES,
    ),
    exclusive=("delay", "run_at"),
)  # fmt: skip
BatchCallback = Schema(
    "BatchCallback",
    (
        Field("payload", "object", {}, 'Its payload; "batch": {id, total, completed, failed, cancelled} is added.'),
        Field("priority", "integer", 0, minimum=0, maximum=MAX_PRIORITY),
        Field("queue", "string", None, "The queue it goes to (default: the batch's).", nullable=True,
              max_length=QUEUE_NAME_MAX, pattern=QUEUE_NAME_PATTERN, pattern_hint="a queue name"),
    ),
)  # fmt: skip
NewBatch = Schema(
    "NewBatch",
    (Field("callback", "object", None, "A job to submit once every job of the batch has finished.", nullable=True,
           shape=BatchCallback),),
)  # fmt: skip
Submit = Schema(
    "Submit",
    (
        Field("payload", "object", None, "One job's payload (or give `jobs`).", nullable=True),
        *(f for f in NewJob.fields if f.name != "payload"),
        Field("jobs", "array", None, "A batch of jobs, accepted atomically.", items=NewJob, nullable=True, min_items=1),
        Field(
            "batch",
            "object",
            None,
            "Track these jobs as one batch (GET …/batches/{id}), with a callback job.",
            nullable=True,
            shape=NewBatch,
        ),
    ),
    description="Either `payload` (one job) or `jobs` (a batch); a job has `delay` or `run_at`, not both.",
    one_of_required=("payload", "jobs"),
    exclusive=("delay", "run_at"),
)
Submitted = Schema(
    "Submitted",
    (
        Field("jobs", "array", items=Job),
        Field("submitted", "integer"),
        Field("skipped", "integer", description="Jobs skipped by dedupe."),
        Field("batch_id", "string", None, "With batch: the batch's id.", nullable=True),
    ),
)
JobQuery = Schema(
    "JobQuery",
    (Field("wait_ms", "integer", 0, "Answer as soon as the job has finished (completed, failed, cancelled), or "
           "after this many ms with its state then.", minimum=0, maximum=MAX_WAIT_MS),),
)  # fmt: skip
Progress = Schema(
    "Progress",
    (
        Field("lease_id", "string", None, "The lease from the claim; a stale lease gets 409.", nullable=True,
              max_length=64),
        Field("progress", ("number", "object"), description="A number, or a JSON object (at most 64 KiB as JSON)."),
    ),
)  # fmt: skip
Batch = Schema(
    "Batch",
    (
        Field("id", "string"),
        Field("total", "integer", description="Jobs in the batch."),
        Field("pending", "integer", description="Jobs not finished yet."),
        Field("completed", "integer"),
        Field("failed", "integer", description="Jobs dead-lettered."),
        Field("cancelled", "integer"),
        Field("finished", "boolean"),
        Field("callback_job_id", "string", None, "The callback's job id (null: no callback).", nullable=True),
        Field("created_at", "string"),
        Field("finished_at", "string", description='"" until finished.'),
    ),
)
EventsQuery = Schema(
    "EventsQuery",
    (Field("since", "integer", None, "Resume after this event id (as the Last-Event-ID header); 0 replays the "
           "whole log.", minimum=0, nullable=True),),
)  # fmt: skip
EventStream = Schema(
    "Event",
    (
        Field("job_id", "string"),
        Field("status", "string", description="The job's status after the event.", enum=STATUSES),
        Field("at", "string"),
        Field("queue", "string"),
        Field("event", "string", description="What happened (also the SSE event name).", enum=EVENT_KINDS),
    ),
    description="text/event-stream: `id:` the event's number, `event:` its kind, `data:` this object (with more "
    "fields by kind: error, retries, worker, lease_id, progress). `event: dropped` says events were lost "
    "to the log's cap; keep-alives are comments.",
)

Claim = Schema(
    "Claim",
    (
        Field("count", "integer", 1, "How many jobs to claim at most.", minimum=1, maximum=MAX_CLAIM_COUNT),
        Field(
            "block_ms", "integer", 0, "How long to wait for a job when none is ready.", minimum=0, maximum=MAX_BLOCK_MS
        ),
        Field("worker", "string", "", "A name for the claiming worker (shown in stats).", max_length=MAX_WORKER_NAME),
    ),
)
Claimed = Schema("Claimed", (Field("jobs", "array", items=Job),))

Complete = Schema(
    "Complete",
    (
        Field("result", None, None, "Any JSON value; stored as the job's result.", nullable=True),
        Field(
            "lease_id",
            "string",
            None,
            "The lease from the claim; a stale lease gets 409.",
            nullable=True,
            max_length=64,
        ),
    ),
)
Fail = Schema(
    "Fail",
    (
        Field("error", "string", "", "What went wrong.", max_length=MAX_ERROR_TEXT),
        Field("lease_id", "string", None, nullable=True, max_length=64),
        Field("retry", "boolean", True, "false dead-letters the job at once."),
    ),
)
Extend = Schema(
    "Extend",
    (
        Field("lease_id", "string", None, nullable=True, max_length=64),
        Field(
            "seconds",
            "number",
            None,
            "New lease length from now (default: the queue's claim_timeout).",
            minimum=1,
            maximum=MAX_CLAIM_TIMEOUT,
            nullable=True,
        ),
    ),
)
Outcome = Schema("Outcome", (Field("status", "string"), Field("job_id", "string")))
FailOutcome = Schema("FailOutcome", (Field("status", "string"), Field("job_id", "string"), Field("retries", "integer")))
Extended = Schema(
    "Extended", (Field("status", "string"), Field("job_id", "string"), Field("lease_expires_at", "string"))
)

AckComplete = Schema(
    "AckComplete",
    (
        Field("id", "string", max_length=64),
        Field("lease_id", "string", None, nullable=True, max_length=64),
        Field("result", None, None, nullable=True),
    ),
)
AckFail = Schema(
    "AckFail",
    (
        Field("id", "string", max_length=64),
        Field("lease_id", "string", None, nullable=True, max_length=64),
        Field("error", "string", "", max_length=MAX_ERROR_TEXT),
        Field("retry", "boolean", True),
    ),
)
Ack = Schema(
    "Ack",
    (
        Field("complete", "array", [], items=AckComplete),
        Field("fail", "array", [], items=AckFail),
    ),
)
AckItem = Schema(
    "AckItem",
    (
        Field("job_id", "string"),
        Field("ok", "boolean"),
        Field("status", "string", description="The job's new status (when ok)."),
        Field("retries", "integer", nullable=True),
        Field("error", "string", nullable=True, description="Error code (when not ok)."),
        Field("detail", "string", nullable=True),
    ),
)
Acked = Schema(
    "Acked",
    (
        Field("results", "array", items=AckItem),
        Field("completed", "integer"),
        Field("failed", "integer"),
        Field("errors", "integer"),
    ),
)

Bulk = Schema(
    "Bulk",
    (
        Field("action", "string", description="What to do to each job, as its single route does: retry (POST "
              "…/jobs/{id}/retry), cancel (DELETE …/jobs/{id}), promote (POST …/jobs/{id}/promote), or delete "
              "(remove a completed, failed or cancelled job for good).", enum=BULK_ACTIONS),
        Field("ids", "array", description="The jobs, done in this order; an id given twice is done once, then "
              "answered as a second request would be.", min_items=1, max_items=MAX_BULK_IDS,
              items=Field("id", "string", max_length=64, pattern=f"^(?:{JOB_ID_TEXT})$", pattern_hint="a job id")),
    ),
)  # fmt: skip
BulkItem = Schema(
    "BulkItem",
    (
        Field("job_id", "string"),
        Field("ok", "boolean"),
        Field("status", "string", None, 'The job\'s new status (when ok; "deleted" for delete).', nullable=True),
        Field("error", "string", None, "Error code, as the single route answers it (when not ok).", nullable=True),
        Field("detail", "string", None, "What the single route would say (when not ok).", nullable=True),
    ),
)
BulkDone = Schema(
    "BulkDone",
    (
        Field("results", "array", description="One per id, in the order of ids.", items=BulkItem),
        Field("ok", "integer", description="Items done."),
        Field("errors", "integer", description="Items refused."),
    ),
)

JobPage = Schema(
    "JobPage",
    (
        Field("jobs", "array", items=Job),
        Field("cursor", "string", description='Pass as `cursor` for the next page ("" when there is none).'),
        Field("has_more", "boolean"),
    ),
)
ListQuery = Schema(
    "ListQuery",
    (
        Field("status", "string", "", "Only jobs with this status.", enum=("", *STATUSES)),
        Field("count", "integer", 50, "Page size.", minimum=1, maximum=500),
        Field(
            "cursor",
            "string",
            "",
            'The `cursor` of the previous page (the id of its last job); "" starts from the newest.',
            max_length=64,
            # Anchored: a JSON Schema pattern matches anywhere in the value unless it says otherwise.
            pattern=f"^(?:{JOB_ID_PATTERN})?$",
            pattern_hint='the "cursor" of a previous page (a job id), or empty for the newest',
        ),
        Field("tag", "string", "", "Only jobs with this tag.", max_length=MAX_TAG_LENGTH),
        Field(
            "q",
            "string",
            "",
            "Only jobs whose id starts with this text, or whose payload or error contains it "
            "(case-insensitive). Looks at most 2,000 jobs per page: a page may come back short, with has_more.",
            max_length=200,
        ),
    ),
)

Release = Schema(
    "Release",
    (
        Field("lease_id", "string", None, "The lease from the claim; a stale lease gets 409.", nullable=True,
              max_length=64),
        Field("delay", "number", 0, "Seconds before the job can be claimed again (0: at once).", minimum=0,
              maximum=MAX_DELAY),
    ),
)  # fmt: skip
PURGEABLE = tuple(s for s in JOB_STATUSES if s != "claimed")
Purge = Schema("Purge", (Field("status", "string", description="Which jobs to remove.", enum=PURGEABLE),))
Purged = Schema("Purged", (Field("status", "string"), Field("queue", "string"), Field("purged", "integer")))

# Schedules: a name, cron or every, a time zone, the payload, paused, and the job options of its jobs.
_SCHEDULE_FIELDS = (
    Field("cron", "string", None, "A cron expression: 5 fields, or 6 with seconds first (*/2 * * * * *).",
          max_length=256, nullable=True),
    Field("every", "integer", None, "Run every this many seconds.", minimum=1, maximum=MAX_UNIQUE_FOR,
          nullable=True),
    Field("timezone", "string", "UTC", "The IANA time zone the cron expression is read in.", max_length=64),
    Field("payload", "object", {}, "The payload of every job it submits."),
    Field("paused", "boolean", False, "A paused schedule submits nothing."),
    Field("priority", "integer", 0, "Its jobs' priority.", minimum=0, maximum=MAX_PRIORITY),
    *JOB_OPTIONS,
)  # fmt: skip
CreateSchedule = Schema(
    "CreateSchedule",
    (
        Field("name", "string", description="The schedule's name (as a queue name).", max_length=QUEUE_NAME_MAX,
              pattern=QUEUE_NAME_PATTERN),
        *_SCHEDULE_FIELDS,
    ),
    description="Exactly one of cron and every.",
    one_of_required=("cron", "every"),
    exclusive=("cron", "every"),
)  # fmt: skip
UpdateSchedule = Schema(
    "UpdateSchedule", tuple(attrs.evolve(f, default=ABSENT) for f in _SCHEDULE_FIELDS), exclusive=("cron", "every")
)
Schedule = Schema(
    "Schedule",
    (
        Field("name", "string"),
        Field("queue", "string"),
        *(attrs.evolve(f, default=None) for f in _SCHEDULE_FIELDS),
        Field("next_run_at", "string", description='When it runs next ("" while paused).'),
        Field("last_run_at", "string", description='When it last ran ("" before its first run).'),
        Field("last_job_id", "string", description="The job its last run submitted."),
        Field("created_at", "string"),
    ),
)
ScheduleList = Schema("ScheduleList", (Field("schedules", "array", items=Schedule),))
ScheduleDeleted = Schema("ScheduleDeleted", (Field("status", "string"), Field("schedule", "string")))

Stats = Schema(
    "Stats",
    (
        Field("queue", "string"),
        Field("bucket_seconds", "number"),
        Field("now", "string"),
        Field("throughput", "array", description="[{at, completed, failed}] per bucket, oldest first."),
        Field("workers", "array", description="[{name, last_seen, jobs_in_hand}], most recent first."),
    ),
)

Health = Schema(
    "Health",
    (
        Field("status", "string", description='"ok", or "error" with a 503.'),
        # Only in some answers: "detail" when the store is down, the rest when it is up.
        Field("detail", "string", None, nullable=True),
        Field("redis_version", "string", None, nullable=True),
        Field("waiting_claims", "integer", None, nullable=True),
    ),
)
Error = Schema(
    "Error",
    (
        Field("detail", "string", description="A message for people."),
        Field("error", "string", description="A stable code for programs."),
    ),
)
