"""The facts of Starq's HTTP protocol that the server, the worker kit, the CLI and the dashboard share.

Declared once, here, in plain Python with no dependency, so the worker kit imports them without the server
and the server builds its schemas, its Lua constants and its defaults from them. The error classes and their
codes, the other shared fact, live in ``errors.py`` beside this module for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypedDict

DEFAULT_URL = "http://localhost:8000"  # where a client looks for the server when not told
DEFAULT_TIMEOUT = 30.0  # seconds a client request may take (a claim's own block_ms is added to it)

# Every status a job can have, in the order counts and tabs show them. A waiting job waits for its
# dependencies to complete.
JOB_STATUSES = ("waiting", "pending", "scheduled", "claimed", "completed", "failed", "cancelled")
# Statuses a job does not leave by itself: its record is removed once the queue's retention has passed.
FINISHED_STATUSES = ("completed", "failed", "cancelled")

MAX_PRIORITY = 9


class QueueSetting(NamedTuple):
    """One setting of a queue: chosen on create, changed with PATCH, shown in the queue's info."""

    name: str
    type: str  # its JSON type: "string", "integer", "number", "boolean" or "object" (null allowed)
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None


QUEUE_SETTINGS: tuple[QueueSetting, ...] = (
    QueueSetting("description", "string", "", "What the queue is for.", max_length=1024),
    QueueSetting(
        "max_retries", "integer", 3, "How many times a failed job is handed out again before it is dead-lettered.",
        minimum=0, maximum=1000,
    ),
    QueueSetting(
        "claim_timeout", "integer", 600, "Seconds a claim's lease lasts; an unfinished job is then reclaimed.",
        minimum=1, maximum=7 * 86400,
    ),
    QueueSetting("dedupe", "boolean", False, "Skip a submitted payload equal to one of a job the queue still knows."),
    QueueSetting(
        "retry_delay", "number", 1, "Base of the exponential retry backoff, in seconds (0 = retry at once).",
        minimum=0, maximum=86400,
    ),
    QueueSetting("retry_delay_max", "number", 300, "Cap of the retry backoff, in seconds.", minimum=0, maximum=86400),
    QueueSetting(
        "retention", "integer", 7 * 86400, "Seconds finished jobs are kept before their records are removed.",
        minimum=1, maximum=366 * 86400,
    ),
    QueueSetting(
        "concurrency", "integer", 0, "Most jobs claimed at once across the queue (0 = unlimited).",
        minimum=0, maximum=1_000_000,
    ),
    QueueSetting(
        "key_concurrency", "integer", 0,
        "Most claimed jobs at once per job key (0 = unlimited); with 1, a key's jobs go one at a time, in order.",
        minimum=0, maximum=1_000_000,
    ),
    QueueSetting(
        "rate_limit", "object", None,
        '{"max": n, "per_ms": m}: at most n jobs handed out per m ms window, by every server together; null = none.',
    ),
    QueueSetting(
        "events", "boolean", False,
        "Keep a log of every job transition and stream it (GET …/events); off, the queue writes none.",
    ),
    QueueSetting(
        "events_max", "integer", 10_000, "About how many events the log keeps (the oldest go first).",
        minimum=100, maximum=1_000_000,
    ),
)  # fmt: skip

QUEUE_DEFAULTS: dict[str, Any] = {s.name: s.default for s in QUEUE_SETTINGS}

# Limits of a job's options (on submit; docs/api.md).
MAX_KEY_LENGTH = 256  # key and unique_key
MAX_TAGS = 16
MAX_TAG_LENGTH = 64
MAX_JOB_TIMEOUT = 7 * 86400  # seconds
MAX_UNIQUE_FOR = 366 * 86400  # seconds
MAX_DELAY = 366 * 86400  # seconds: a job's delay, or a release's
# The server's default of its max_batch setting (most jobs of one submit): a client sizes its batches by it.
DEFAULT_MAX_BATCH = 1000
MAX_DEPENDENCIES = 100  # depends_on
MAX_JSON_DEPTH = 64  # nesting of arrays and objects in a request body (the body itself is level 1)
# What a job does when a dependency is dead-lettered, cancelled or removed before it completed
# (on_dependency_failure): "cancel" it too, saying which (the default, first), or "run" it anyway.
DEPENDENCY_FAILURE_CHOICES = ("cancel", "run")
MAX_PROGRESS_BYTES = 64 * 1024  # a progress report, as JSON
MAX_CLAIM_COUNT = 100  # the most jobs one claim hands out
MAX_BLOCK_MS = 60_000  # the longest block_ms of a claim: the long-poll's limit
MAX_WAIT_MS = 60_000  # the longest wait_ms of GET …/jobs/{id}: a longer wait for an outcome is several requests
# The actions of POST …/jobs/bulk: each does to many jobs what one call does to one ("delete" removes a finished
# job for good), and how many job ids one request may name.
BULK_ACTIONS = ("retry", "cancel", "delete", "promote")
MAX_BULK_IDS = 1000

# The status each event of a job's history (GET …/jobs/{id}) left the job in, for an event that does not name its
# own: one that does ("failed", "expired", a "submitted" that waits for dependencies) says whether the job waits,
# was retried or was dead-lettered. A "submitted" or "released" event with a ``run_at`` left it scheduled until
# then. An event not listed ("extended") changed no status. tests/engine/test_history.py holds the engine to it.
HISTORY_EVENT_STATUS = {
    "submitted": "pending", "claimed": "claimed", "completed": "completed", "cancelled": "cancelled",
    "retried": "pending", "promoted": "pending", "pending": "pending", "released": "pending",
}  # fmt: skip

# What a job's event log entry says happened (GET …/events, the ``event:`` field).
EVENT_KINDS = (
    "submitted", "claimed", "completed", "failed", "retried", "expired", "released", "cancelled", "progress",
    "pending",
)  # fmt: skip


class JobOptions(TypedDict, total=False):
    """The options a job may carry (docs/api.md, "Job options"), keywords of ``submit``, ``submit_many`` and
    ``create_schedule`` (a schedule gives them to every job it submits). One left out or ``None`` is not sent:
    the job gets the queue's or the server's default.

    Attributes:
        key: the job's ordering and concurrency group (see the queue's ``key_concurrency``).
        unique_key: the job is skipped while an unfinished job holds the same key.
        unique_for: with ``unique_key``: seconds the key is held from submission instead, whatever becomes of
            the job.
        timeout: seconds one attempt may run; it then fails (and is retried as any failure).
        max_retries: instead of the queue's.
        tags: labels to list jobs by: a list of strings (a lone string raises ``TypeError``).
    """

    key: str | None
    unique_key: str | None
    unique_for: int | None
    timeout: int | None
    max_retries: int | None
    tags: Sequence[str] | None


class SubmitOptions(JobOptions, total=False):
    """The keywords of ``submit`` and ``submit_many`` besides ``priority``: the job options, and when the job is
    due and what it waits for. One left out or ``None`` is not sent.

    Attributes:
        delay: seconds from now until the job is due (``scheduled`` until then).
        run_at: when the job is due, ISO 8601 with a zone. Giving it and ``delay`` raises ``ValidationFailed``.
        depends_on: ids of jobs of the same queue; the job is ``waiting`` until all have completed (an id the
            queue does not know raises ``ValidationFailed``). A list (a lone string raises ``TypeError``).
        on_dependency_failure: what the job does if one of them is dead-lettered, cancelled or removed first:
            ``"cancel"`` (the server's default) or ``"run"`` (``protocol.DEPENDENCY_FAILURE_CHOICES``).
    """

    delay: float | None
    run_at: str | None
    depends_on: Sequence[str] | None
    on_dependency_failure: str | None


# Their names, in the order a request body lists them.
JOB_OPTIONS = tuple(JobOptions.__annotations__)
SUBMIT_OPTIONS = tuple(SubmitOptions.__annotations__)
