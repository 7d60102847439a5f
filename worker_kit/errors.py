"""The errors a Starq client can meet, rebuilt from the server's stable ``error`` codes.

This is the one hierarchy of Starq's errors: the server raises these classes and renders each as its
``status`` with ``{"detail", "error": code}``; the client rebuilds the same class from ``error``, so a program
catches ``LeaseLost`` or ``QueueNotFound`` whether it runs next to the server or talks to it over HTTP. It lives
in the worker kit so that the kit imports without the server's dependencies. Two classes are the client's own:
``ServerUnreachable`` (no HTTP answer at all) and ``UnexpectedResponse`` (an answer that is not Starq's JSON).

    StarqError
        BadRequest (400)
        Unauthorized (401)
        NotFound (404): QueueNotFound, JobNotFound, ScheduleNotFound, BatchNotFound
        MethodNotAllowed (405)
        RequestTimeout (408)
        Conflict (409): QueueExists, TooManyQueues, NotClaimed, LeaseLost, JobCancelled, ScheduleExists,
            InvalidState
        TooLarge (413): HeadersTooLarge (431)
        ValidationFailed (422): UnknownDependency
        StoreUnavailable (503): NotDurable
        ShuttingDown (503)
        ServerUnreachable (no answer at all)
        UnexpectedResponse (an answer that is not Starq's JSON)
"""

from __future__ import annotations

from typing import Any


class StarqError(Exception):
    """Base of every Starq error. ``detail`` is the server's message; ``code`` its stable error code."""

    code = "error"
    status = 500

    def __init__(self, detail: str = "", *, code: str | None = None, status: int | None = None) -> None:
        self.detail = detail or (self.__class__.__doc__ or self.code).strip()
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        super().__init__(self.detail)


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


class ScheduleNotFound(NotFound):
    """The schedule does not exist."""

    code = "schedule_not_found"


class BatchNotFound(NotFound):
    """The batch does not exist (or its record was removed after the queue's retention)."""

    code = "batch_not_found"


class MethodNotAllowed(StarqError):
    """The method is not allowed on this path."""

    code = "method_not_allowed"
    status = 405

    def __init__(self, detail: str = "", *, allowed: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.allowed = allowed  # the methods the path does allow (the server's Allow header)


class RequestTimeout(StarqError):
    """The request body did not arrive in time."""

    code = "request_timeout"
    status = 408


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


class JobCancelled(Conflict):
    """The job was cancelled while claimed: its worker should stop working on it."""

    code = "job_cancelled"


class ScheduleExists(Conflict):
    """A schedule with this name already exists in the queue."""

    code = "schedule_exists"


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


class UnknownDependency(ValidationFailed):
    """A job's depends_on names no job of its queue. Rendered as validation_error; ``item`` is the job's index
    in its submit, ``index`` the dependency's in its depends_on."""

    def __init__(self, item: int, index: int, job_id: str) -> None:
        super().__init__(f"jobs[{item}].depends_on[{index}]: no job {job_id} in this queue")
        self.item, self.index, self.job_id = item, index, job_id


class StoreUnavailable(StarqError):
    """The Redis store cannot be reached."""

    code = "store_unavailable"
    status = 503


class NotDurable(StoreUnavailable):
    """The store cannot confirm that a write reached its disk, or a replica on a Sentinel-managed primary (a server
    run with STARQ_DURABLE=1)."""

    code = "not_durable"


class ShuttingDown(StarqError):
    """The server is shutting down."""

    code = "shutting_down"
    status = 503


class ServerUnreachable(StarqError):
    """No HTTP answer: the server could not be reached, or the connection broke before it answered."""

    code = "unreachable"
    status = 0

    def __init__(self, detail: str = "", *, maybe_processed: bool = False) -> None:
        super().__init__(detail)
        # True when the request may have reached the server (it broke while waiting for the answer), so a
        # write may or may not have happened.
        self.maybe_processed = maybe_processed


class UnexpectedResponse(StarqError):
    """The server answered with something that is not Starq's JSON (a proxy's error page, for example)."""

    code = "unexpected_response"


# Every class the server can name in ``error``; codes the client does not know fall back on the status.
SERVER_ERRORS: tuple[type[StarqError], ...] = (
    BadRequest,
    Unauthorized,
    NotFound,
    QueueNotFound,
    JobNotFound,
    ScheduleNotFound,
    BatchNotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    QueueExists,
    TooManyQueues,
    NotClaimed,
    LeaseLost,
    JobCancelled,
    ScheduleExists,
    InvalidState,
    TooLarge,
    HeadersTooLarge,
    ValidationFailed,
    StoreUnavailable,
    NotDurable,
    ShuttingDown,
)
_BY_CODE: dict[str, type[StarqError]] = {cls.code: cls for cls in SERVER_ERRORS}
_BY_STATUS: dict[int, type[StarqError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    409: Conflict,
    413: TooLarge,
    422: ValidationFailed,
    431: HeadersTooLarge,
    503: StoreUnavailable,
}


def error_from_response(status: int, body: Any) -> StarqError:
    """The exception for an error response: by its ``error`` code, else by its HTTP status."""
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status, StarqError)
        if cls.status != status or (code and cls.code != code):
            return cls(body["detail"], code=code or cls.code, status=status)
        return cls(body["detail"])
    return UnexpectedResponse(f"HTTP {status} without a Starq error body", status=status)


def error_from_code(code: str, detail: str) -> StarqError:
    """The exception an error named by its code alone stands for (an event stream's ``event: error`` carries only
    ``{"error", "detail"}``, no HTTP status)."""
    cls = _BY_CODE.get(code)
    return cls(detail) if cls is not None else StarqError(detail, code=code)
