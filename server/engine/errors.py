"""Every error the engine raises, each with a stable code and the HTTP status it stands for.

The HTTP layer renders these as ``{"detail": ..., "error": code}``; ``starq.worker_kit`` rebuilds the same
classes from ``error``, so the hierarchy below is part of the public protocol.
"""

from __future__ import annotations


class StarqError(Exception):
    """Base of every Starq error."""

    code = "error"
    status = 500

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.__class__.__doc__ or self.code)
        self.detail = detail or (self.__class__.__doc__ or self.code).strip()


class BadRequest(StarqError):
    """The request body is not valid JSON."""

    code = "bad_request"
    status = 400


class Unauthorized(StarqError):
    """A valid X-API-Key header is required."""

    code = "unauthorized"
    status = 401


class NotFound(StarqError):
    """No such resource."""

    code = "not_found"
    status = 404


class QueueNotFound(NotFound):
    """The queue does not exist."""

    code = "queue_not_found"


class JobNotFound(NotFound):
    """The job does not exist."""

    code = "job_not_found"


class MethodNotAllowed(StarqError):
    """The method is not allowed on this path."""

    code = "method_not_allowed"
    status = 405


class Conflict(StarqError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class QueueExists(Conflict):
    """A queue with this name already exists."""

    code = "queue_exists"


class TooManyQueues(Conflict):
    """The store holds as many queues as the server allows."""

    code = "too_many_queues"


class NotClaimed(Conflict):
    """The job is not claimed, so it cannot be completed, failed or extended."""

    code = "not_claimed"


class LeaseLost(Conflict):
    """The lease named in the request is no longer the job's current lease."""

    code = "lease_lost"


class InvalidState(Conflict):
    """The job or queue is not in a state that allows this action."""

    code = "invalid_state"


class TooLarge(StarqError):
    """The request exceeds a size limit."""

    code = "too_large"
    status = 413


class HeadersTooLarge(TooLarge):
    """The request line and headers exceed the size limit."""

    code = "headers_too_large"
    status = 431


class ValidationFailed(StarqError):
    """The request does not match the schema."""

    code = "validation_error"
    status = 422


class StoreUnavailable(StarqError):
    """The Redis store cannot be reached."""

    code = "store_unavailable"
    status = 503


class ShuttingDown(StarqError):
    """The server is shutting down."""

    code = "shutting_down"
    status = 503


# The engine's Lua functions signal errors with a leading code word; this maps it to the class to raise.
LUA_ERRORS: dict[str, type[StarqError]] = {
    "NOQUEUE": QueueNotFound,
    "NOJOB": JobNotFound,
    "NOTCLAIMED": NotClaimed,
    "LEASE": LeaseLost,
    "STATE": InvalidState,
}

ALL_ERRORS: tuple[type[StarqError], ...] = (
    StarqError,
    BadRequest,
    Unauthorized,
    NotFound,
    QueueNotFound,
    JobNotFound,
    MethodNotAllowed,
    Conflict,
    QueueExists,
    TooManyQueues,
    NotClaimed,
    LeaseLost,
    InvalidState,
    TooLarge,
    HeadersTooLarge,
    ValidationFailed,
    StoreUnavailable,
    ShuttingDown,
)
