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

# The classes that declare their own code, in the order declared (filled by ``StarqError.__init_subclass__``).
_WITH_CODE: list[type[StarqError]] = []


class StarqError(Exception):
    """Base of every Starq error. ``detail`` is the server's message; ``code`` its stable error code."""

    code = "error"
    status = 500

    def __init_subclass__(cls, *, code: str | None = None, status: int | None = None, **kwargs: Any) -> None:
        # ``class LeaseLost(Conflict, code="lease_lost")``: a class that names its own code is one the server
        # can render, so it is listed for the client to rebuild (the status is inherited unless given).
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
            _WITH_CODE.append(cls)
        if status is not None:
            cls.status = status

    def __init__(self, detail: str = "", *, code: str | None = None, status: int | None = None) -> None:
        self.detail = detail or (self.__class__.__doc__ or self.code).strip()
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        super().__init__(self.detail)


class BadRequest(StarqError, code="bad_request", status=400):
    """The request body is not valid JSON."""


class Unauthorized(StarqError, code="unauthorized", status=401):
    """A valid X-API-Key header is required."""


class NotFound(StarqError, code="not_found", status=404):
    """No such resource."""


class QueueNotFound(NotFound, code="queue_not_found"):
    """The queue does not exist."""


class JobNotFound(NotFound, code="job_not_found"):
    """The job does not exist."""


class ScheduleNotFound(NotFound, code="schedule_not_found"):
    """The schedule does not exist."""


class BatchNotFound(NotFound, code="batch_not_found"):
    """The batch does not exist (or its record was removed after the queue's retention)."""


class MethodNotAllowed(StarqError, code="method_not_allowed", status=405):
    """The method is not allowed on this path."""

    def __init__(self, detail: str = "", *, allowed: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.allowed = allowed  # the methods the path does allow (the server's Allow header)


class RequestTimeout(StarqError, code="request_timeout", status=408):
    """The request body did not arrive in time."""


class Conflict(StarqError, code="conflict", status=409):
    """The request conflicts with the current state."""


class QueueExists(Conflict, code="queue_exists"):
    """A queue with this name already exists."""


class TooManyQueues(Conflict, code="too_many_queues"):
    """The store holds as many queues as the server allows."""


class NotClaimed(Conflict, code="not_claimed"):
    """The job is not claimed, so it cannot be completed, failed or extended."""


class LeaseLost(Conflict, code="lease_lost"):
    """The lease named in the request is no longer the job's current lease."""


class JobCancelled(Conflict, code="job_cancelled"):
    """The job was cancelled while claimed: its worker should stop working on it."""


class ScheduleExists(Conflict, code="schedule_exists"):
    """A schedule with this name already exists in the queue."""


class InvalidState(Conflict, code="invalid_state"):
    """The job or queue is not in a state that allows this action."""


class TooLarge(StarqError, code="too_large", status=413):
    """The request exceeds a size limit."""


class HeadersTooLarge(TooLarge, code="headers_too_large", status=431):
    """The request line and headers exceed the size limit."""


class ValidationFailed(StarqError, code="validation_error", status=422):
    """The request does not match the schema."""


class UnknownDependency(ValidationFailed):
    """A job's depends_on names no job of its queue. Rendered as validation_error; ``item`` is the job's index
    in its submit, ``index`` the dependency's in its depends_on."""

    def __init__(self, item: int, index: int, job_id: str) -> None:
        super().__init__(f"jobs[{item}].depends_on[{index}]: no job {job_id} in this queue")
        self.item, self.index, self.job_id = item, index, job_id


class StoreUnavailable(StarqError, code="store_unavailable", status=503):
    """The Redis store cannot be reached."""


class NotDurable(StoreUnavailable, code="not_durable"):
    """The store cannot confirm that a write reached its disk, or a replica on a Sentinel-managed primary (a server
    run with STARQ_DURABLE=1)."""


class ShuttingDown(StarqError, code="shutting_down", status=503):
    """The server is shutting down."""


class ServerUnreachable(StarqError, code="unreachable", status=0):
    """No HTTP answer: the server could not be reached, or the connection broke before it answered."""

    def __init__(self, detail: str = "", *, maybe_processed: bool = False) -> None:
        super().__init__(detail)
        # True when the request may have reached the server (it broke while waiting for the answer), so a
        # write may or may not have happened.
        self.maybe_processed = maybe_processed


class UnexpectedResponse(StarqError, code="unexpected_response"):
    """The server answered with something that is not Starq's JSON (a proxy's error page, for example)."""


# Every class the server can name in ``error`` (all that declare a code but the client's own two), in the order
# declared; codes the client does not know fall back on the status, to the first class declared with it (a family's
# base: NotFound, Conflict, ...).
SERVER_ERRORS: tuple[type[StarqError], ...] = tuple(
    cls for cls in _WITH_CODE if cls not in (ServerUnreachable, UnexpectedResponse)
)
_BY_CODE: dict[str, type[StarqError]] = {cls.code: cls for cls in SERVER_ERRORS}
_BY_STATUS: dict[int, type[StarqError]] = {}
for _cls in SERVER_ERRORS:
    _BY_STATUS.setdefault(_cls.status, _cls)


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
