"""What a handler's return or exception means for its job, and how an error is written down for the server."""

from __future__ import annotations

import traceback
from typing import Any

import attrs

MAX_ERROR_CHARS = 60_000  # the server keeps at most 64 KiB of error text per job


class Retry(Exception):
    """Raise from a handler to fail the job and have it tried again.

    The server retries it with the queue's backoff (``retry_delay`` doubling up to ``retry_delay_max``) while
    it has attempts left (``max_retries``), then dead-letters it.

    Args:
        message: stored as the job's ``error``.
        delay: seconds to wait, at least, before the job is tried again. The worker keeps the job leased for that
            long without holding a concurrency slot, then fails it; the queue's backoff comes on top.
    """

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Permanent(Exception):
    """Raise from a handler to dead-letter the job at once (status ``failed``), without further attempts."""


@attrs.frozen
class Outcome:
    """How a job ended in this worker. ``kind`` is ``complete``, ``retry`` or ``dead`` (the handler's outcome),
    ``release`` (stopped by a shutdown: given back without counting an attempt) or ``cancelled`` (cancelled on the
    server while it ran: nothing is reported)."""

    kind: str
    result: Any = None
    error: str = ""
    delay: float | None = None

    @property
    def retry(self) -> bool:
        return self.kind == "retry"


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on the first line (what listings show), then a blank line and the traceback."""
    head = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = f"{head}\n\n{tb}".rstrip()
    if len(text) > MAX_ERROR_CHARS:
        # The end of a traceback (where it was raised) matters most; keep the head line too.
        keep = MAX_ERROR_CHARS - len(head) - 40
        text = f"{head}\n\n[... traceback cut ...]\n{tb[-keep:]}".rstrip()
    return text


def outcome_of_error(exc: Exception) -> Outcome:
    """The outcome a handler's exception asks for."""
    if isinstance(exc, Retry):
        return Outcome("retry", error=str(exc) or "Retry", delay=exc.delay)
    if isinstance(exc, Permanent):
        return Outcome("dead", error=describe_exception(exc))
    return Outcome("retry", error=describe_exception(exc))
