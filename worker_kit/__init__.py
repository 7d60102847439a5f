"""Starq's Python worker kit: ``StarqClient`` (every HTTP endpoint, typed and async) and ``Worker`` (a
claim-run-report loop with lease extension and graceful shutdown), under asyncio and Trio alike (anyio); and, in
``starq.worker_kit.sync``, a blocking ``StarqClient`` for code without an event loop (Django, Flask, scripts).

It needs only httpx, anyio and attrs, so it installs next to any application without the server's dependencies
(``pip install starq``; the server is ``starq[server]``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .backoff import Backoff, RetryPolicy
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
from .models import Batch, Event, FailOutcome, Job, JobPage, Progress, QueueInfo, RunningJob, Schedule, Submitted
from .outcomes import Permanent, Retry
from .protocol import JobOptions, SubmitOptions

if TYPE_CHECKING:
    from .client import StarqClient
    from .event_stream import EventStream
    from .http import ClientOptions
    from .worker import Worker, WorkerStatistics

# What needs httpx is imported on first use: the protocol, the errors and the models load without it, so the CLI
# completes a command line and the server reads its settings without paying for an HTTP client they do not use.
_LAZY = {
    "StarqClient": "client",
    "ClientOptions": "http",
    "EventStream": "event_stream",
    "Worker": "worker",
    "WorkerStatistics": "worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Backoff",
    "BadRequest",
    "Batch",
    "BatchNotFound",
    "ClientOptions",
    "Conflict",
    "Event",
    "EventStream",
    "FailOutcome",
    "HeadersTooLarge",
    "InvalidState",
    "Job",
    "JobCancelled",
    "JobNotFound",
    "JobOptions",
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
    "SubmitOptions",
    "Submitted",
    "TooLarge",
    "TooManyQueues",
    "Unauthorized",
    "UnexpectedResponse",
    "ValidationFailed",
    "Worker",
    "WorkerStatistics",
]
