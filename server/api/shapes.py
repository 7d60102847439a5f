"""Every request and response body of the API, declared with ``schema.Field``."""

from __future__ import annotations

from starq.worker_kit.protocol import MAX_PRIORITY, QUEUE_SETTINGS

from ..engine.models import JOB_FIELDS, JOB_ID_PATTERN, STATUSES
from .operations import QUEUE_NAME_MAX, QUEUE_NAME_PATTERN
from .schema import Field, Schema

# Limits that are part of the schema itself; size limits (bytes, batch size) come from Settings.
MAX_DELAY_SECONDS = 366 * 86400
MAX_CLAIM_TIMEOUT = next(s.maximum for s in QUEUE_SETTINGS if s.name == "claim_timeout")
MAX_WORKER_NAME = 128
MAX_ERROR_TEXT = 64 * 1024

# The queue settings, as protocol.QUEUE_SETTINGS declares them.
_settings = tuple(
    Field(s.name, s.type, s.default, s.description, minimum=s.minimum, maximum=s.maximum, max_length=s.max_length)
    for s in QUEUE_SETTINGS
)
CreateQueue = Schema(
    "CreateQueue",
    (
        Field("name", "string", description="Queue name.", max_length=QUEUE_NAME_MAX, pattern=QUEUE_NAME_PATTERN),
        *_settings,
    ),
)
UpdateQueue = Schema(
    "UpdateQueue",
    tuple(
        Field(f.name, f.type, None, f.description, f.minimum, f.maximum, f.max_length, nullable=True) for f in _settings
    ),
)
QueueInfo = Schema(
    "QueueInfo",
    (
        Field("name", "string"),
        *(Field(f.name, f.type, description=f.description) for f in _settings),
        *(Field(s, "integer", description=f"Jobs {s} now.") for s in STATUSES),
        Field("paused", "boolean", description="A paused queue hands out no jobs."),
        Field("created_at", "string"),
        Field("oldest_pending_at", "string", description='When the oldest pending job was submitted ("" if none).'),
        Field("workers", "integer", description="Workers that claimed from the queue in the last hour."),
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
    ),
)
NewJob = Schema(
    "NewJob",
    (
        Field("payload", "object", description="The job's data: any JSON object."),
        Field(
            "priority",
            "integer",
            0,
            "0-9; higher is claimed first, FIFO within a priority.",
            minimum=0,
            maximum=MAX_PRIORITY,
        ),
        Field(
            "delay",
            "number",
            None,
            "Seconds to wait before the job becomes ready (not with run_at).",
            minimum=0,
            maximum=MAX_DELAY_SECONDS,
            nullable=True,
        ),
        Field(
            "run_at",
            "string",
            None,
            "ISO 8601 time at which the job becomes ready (not with delay).",
            nullable=True,
            max_length=64,
            format="date-time",
        ),
    ),
    exclusive=("delay", "run_at"),
)
Submit = Schema(
    "Submit",
    (
        Field("payload", "object", None, "One job's payload (or give `jobs`).", nullable=True),
        *(f for f in NewJob.fields if f.name != "payload"),
        Field("jobs", "array", None, "A batch of jobs, accepted atomically.", items=NewJob, nullable=True, min_items=1),
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
    ),
)

Claim = Schema(
    "Claim",
    (
        Field("count", "integer", 1, "How many jobs to claim at most.", minimum=1, maximum=100),
        Field("block_ms", "integer", 0, "How long to wait for a job when none is ready.", minimum=0, maximum=60000),
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
    ),
)

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
