"""Starq's Python worker kit: ``StarqClient`` (every HTTP endpoint, typed and async) and ``Worker`` (a
claim-run-report loop with lease extension and graceful shutdown), under asyncio and Trio alike (anyio); and, in
``starq.worker_kit.sync``, a blocking ``StarqClient`` for code without an event loop (Django, Flask, scripts).

It needs only httpx, anyio and attrs, so it installs next to any application without the server's dependencies
(``pip install starq``; the server is ``starq[server]``).
"""

from .backoff import Backoff, RetryPolicy
from .client import StarqClient
from .errors import (
    BadRequest,
    BatchNotFound,
    Conflict,
    HeadersTooLarge,
    InvalidState,
    JobCancelled,
    JobNotFound,
    LeaseLost,
    MethodNotAllowed,
    NotClaimed,
    NotDurable,
    NotFound,
    QueueExists,
    QueueNotFound,
    RequestTimeout,
    ScheduleExists,
    ScheduleNotFound,
    ServerUnreachable,
    ShuttingDown,
    StarqError,
    StoreUnavailable,
    TooLarge,
    TooManyQueues,
    Unauthorized,
    UnexpectedResponse,
    ValidationFailed,
)
from .event_stream import EventStream
from .models import Batch, Event, FailOutcome, Job, JobPage, Progress, QueueInfo, RunningJob, Schedule, Submitted
from .outcomes import Permanent, Retry
from .worker import Worker, WorkerStatistics

__all__ = [
    "Backoff",
    "BadRequest",
    "Batch",
    "BatchNotFound",
    "Conflict",
    "Event",
    "EventStream",
    "FailOutcome",
    "HeadersTooLarge",
    "InvalidState",
    "Job",
    "JobCancelled",
    "JobNotFound",
    "JobPage",
    "LeaseLost",
    "MethodNotAllowed",
    "NotClaimed",
    "NotDurable",
    "NotFound",
    "Permanent",
    "Progress",
    "QueueExists",
    "QueueInfo",
    "QueueNotFound",
    "RequestTimeout",
    "Retry",
    "RetryPolicy",
    "RunningJob",
    "Schedule",
    "ScheduleExists",
    "ScheduleNotFound",
    "ServerUnreachable",
    "ShuttingDown",
    "StarqClient",
    "StarqError",
    "StoreUnavailable",
    "Submitted",
    "TooLarge",
    "TooManyQueues",
    "Unauthorized",
    "UnexpectedResponse",
    "ValidationFailed",
    "Worker",
    "WorkerStatistics",
]
