"""Reading a JSONL file of payloads in batches, without ever holding more than one batch in memory.

Each line must be one JSON object (a job's payload); blank lines are ignored. A batch comes back as the body of
a submit request already encoded: the lines are checked with orjson and then sent as they were written, so a
payload is never decoded into Python objects and encoded again. The options every job gets (priority, delay, job
options) are encoded once, as the tail every item shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

import attrs
import orjson

MAX_BATCH_BYTES = 4 * 1024 * 1024  # well under the server's 10 MiB body limit


@attrs.frozen
class BadLine:
    number: int
    reason: str


@attrs.frozen
class Batch:
    """Lines ``first``..``last`` of the file as one submit request body of ``count`` jobs."""

    first: int
    last: int
    count: int
    body: bytes


@attrs.define
class Chunk:
    """What one read produced: at most one batch, the bad lines met, and how far the file was read."""

    batch: Batch | None
    bad: list[BadLine]
    bytes_read: int
    stop: bool  # end of file, or a bad line that ends the submit


class JsonlReader:
    """Reads batches of payload lines from a binary file (a blocking reader: call it from a thread)."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        batch_size: int,
        options: Mapping[str, Any] | None = None,
        request: Mapping[str, Any] | None = None,
        skip_bad: bool = False,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.file = file
        self.batch_size = batch_size
        self.skip_bad = skip_bad
        self.max_batch_bytes = max_batch_bytes
        self.line = 0
        # {"payload": <line>} or {"payload": <line>, "priority": 5, ...}: the options' object without its "{".
        self._suffix = b"," + orjson.dumps(dict(options))[1:] if options else b"}"
        # {"jobs": [...]} or {"jobs": [...], "batch": {...}}: the request's other fields, after the jobs.
        self._tail = b"]," + orjson.dumps(dict(request))[1:] if request else b"]}"

    def read_batch(self) -> Chunk:
        items: list[bytes] = []
        bad: list[BadLine] = []
        size = read = 0
        first = last = 0
        while len(items) < self.batch_size and size < self.max_batch_bytes:
            raw = self.file.readline()
            if not raw:
                return Chunk(self._batch(first, last, items), bad, read, stop=True)
            self.line += 1
            read += len(raw)
            text = raw.strip()
            if not text:
                continue
            reason = _check(text)
            if reason is not None:
                bad.append(BadLine(self.line, reason))
                if not self.skip_bad:
                    return Chunk(self._batch(first, last, items), bad, read, stop=True)
                continue
            if not items:
                first = self.line
            item = b'{"payload":' + text + self._suffix
            items.append(item)
            last = self.line
            size += len(item)
        return Chunk(self._batch(first, last, items), bad, read, stop=False)

    def _batch(self, first: int, last: int, items: list[bytes]) -> Batch | None:
        if not items:
            return None
        return Batch(first=first, last=last, count=len(items), body=b'{"jobs":[' + b",".join(items) + self._tail)


def _check(text: bytes) -> str | None:
    """Why a line cannot be a payload, or None when it can."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(value, dict):
        return f"a payload must be a JSON object, not {type(value).__name__}"
    return None
