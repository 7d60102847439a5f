"""Bytes on the wire: response heads, chunk framing, the Date header and the JSON errors of the HTTP layer itself.

Kept apart from the connection loop so the loop reads as control flow, and so the byte layouts are in one place.
"""

from __future__ import annotations

from email.utils import formatdate
from http import HTTPStatus
from time import time

import orjson

# Statuses whose response never has a body (RFC 9110 §6.4.1), besides any answer to HEAD.
NO_BODY_STATUSES = frozenset({204, 304})
CHUNKED_END = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_STATUS_LINES: dict[int, bytes] = {}
_date_cache: list = [0, b""]  # [whole second, b"date: ...\r\n"]


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` for ``status``, built once per status."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")
    return line


def date_header() -> bytes:
    """The ``date`` header line; formatted at most once a second."""
    now = int(time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = b"date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
    return _date_cache[1]


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (an empty ``data`` gives nothing: an empty chunk would end the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


class BadResponse(RuntimeError):
    """The app sent a response that cannot be framed (bad header bytes, more body than its Content-Length)."""


def check_header(name: bytes, value: bytes) -> None:
    # A CR or LF would let a header value start a new header or a new response (response splitting).
    if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name or b":" in name:
        raise BadResponse(f"invalid response header {name!r}")


def error_response(status: int, error: str, detail: str, extra: bytes = b"") -> bytes:
    """A whole JSON error response ``{"detail", "error"}`` that closes the connection; ``extra``: more header
    lines, each ending in CRLF."""
    body = orjson.dumps({"detail": detail, "error": error})
    return (
        status_line(status)
        + date_header()
        + b"content-type: application/json\r\nx-content-type-options: nosniff\r\n"
        + extra
        + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )
