"""What a handler's return or exception means for its job, and how an error is written down for the server."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import attrs

MAX_ERROR_CHARS = 60_000  # the server keeps at most 64 KiB of error text per job

# Packages whose frames a handler's traceback leaves out: they only say how the handler was called (the kit's
# task, the event loop's scheduling, the hop into a thread and back), never where it went wrong. The kit itself is
# this folder. Looked up among the modules already imported, so none is imported for this.
MACHINERY = ("trio", "anyio", "asyncio", "outcome")


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
    """``Type: message`` on the first line (what listings show), then a blank line and the traceback of the
    handler's own frames (``user_traceback``)."""
    head = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    tb = user_traceback(exc)
    text = f"{head}\n\n{tb}".rstrip()
    if len(text) > MAX_ERROR_CHARS:
        # The end of a traceback (where it was raised) matters most; keep the head line too.
        keep = MAX_ERROR_CHARS - len(head) - 40
        text = f"{head}\n\n[... traceback cut ...]\n{tb[-keep:]}".rstrip()
    return text


def user_traceback(exc: BaseException) -> str:
    """The exception's traceback as Python prints it, without the frames of the worker kit and of the event loop
    (``MACHINERY``), in its causes, contexts and exception groups too. The type and message stay as they are."""
    hidden = _hidden_folders()
    summary = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    _drop_frames(summary, hidden, set())
    return "".join(summary.format())


def _hidden_folders() -> tuple[str, ...]:
    folders = [os.path.dirname(os.path.abspath(__file__))]
    for name in MACHINERY:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            folders.append(os.path.dirname(os.path.abspath(file)))
    return tuple(os.path.join(folder, "") for folder in folders)


def _drop_frames(summary: traceback.TracebackException, hidden: tuple[str, ...], seen: set[int]) -> None:
    if id(summary) in seen:  # a cycle of contexts
        return
    seen.add(id(summary))
    kept = [frame for frame in summary.stack if not os.path.abspath(frame.filename).startswith(hidden)]
    summary.stack = traceback.StackSummary.from_list(kept)
    for linked in (summary.__cause__, summary.__context__, *(summary.exceptions or ())):
        if linked is not None:
            _drop_frames(linked, hidden, seen)


def outcome_of_error(exc: Exception) -> Outcome:
    """The outcome a handler's exception asks for."""
    if isinstance(exc, Retry):
        return Outcome("retry", error=str(exc) or "Retry", delay=exc.delay)
    if isinstance(exc, Permanent):
        return Outcome("dead", error=describe_exception(exc))
    return Outcome("retry", error=describe_exception(exc))
