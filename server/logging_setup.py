"""Logging: one JSON object per line when stderr is not a terminal, readable text when it is; request ids.

Every request gets an id: the caller's ``X-Request-ID`` when it is a sane token (a proxy's id flows through),
else a fresh one. It is returned in the ``X-Request-ID`` response header and attached to every log record
written while the request is handled, so one grep finds a request's whole story.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import sys
import time
from typing import Any

import orjson

REQUEST_ID_HEADER = "X-Request-ID"
FORMATS = ("auto", "json", "text")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("starq_request_id", default="")
access_log = logging.getLogger("starq.access")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being handled ("" outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id"?, <extra fields>…, "exc"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


JsonFormatter.converter = time.gmtime  # timestamps in UTC, as the trailing Z says


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{line} [{rid}]" if rid else line


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Sends every log record to stderr as JSON or text (``auto``: JSON unless stderr is a terminal)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # coredis logs every connection it closes; only its warnings are worth a line.
    logging.getLogger("coredis").setLevel(max(logging.WARNING, root.level))


# A fresh id is 32 hex digits: 64 random bits drawn once per process, then a counter. Unique across processes
# and restarts as a random UUID is, without asking the kernel for randomness on every request (uuid4 was one
# getrandom call and a UUID object per request, ~2 % of a claim's CPU).
_ID_PREFIX = ""
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(8).hex()
    _ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # a forked child must not repeat its parent's ids


def request_id_for(given: str | None) -> str:
    """The id of a request that sent ``given`` as its X-Request-ID: that, when it is a sane token, else a new one."""
    if given and _SANE_ID.fullmatch(given):
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def log_access(method: str, path: str, status: int, started: float, remote: str) -> None:
    """Writes the access-log line of a request that began at ``started`` (``time.perf_counter()``)."""
    took = time.perf_counter() - started
    access_log.info(
        "%s %s %d",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(took * 1000, 2),
            "remote": remote,
        },
    )
