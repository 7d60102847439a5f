"""The engine's values: queue settings, queue info and jobs, and how they read from Redis replies."""

from __future__ import annotations

import functools
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson

STATUSES = ("pending", "scheduled", "claimed", "completed", "failed", "cancelled")


def iso(ms: str | int | None) -> str:
    """Milliseconds since the epoch as an ISO 8601 UTC string; "" when unset."""
    if ms is None or ms == "":
        return ""
    return _iso(int(ms))


@functools.lru_cache(maxsize=4096)
def _iso(ms: int) -> str:
    # Cached: the jobs of one claim share their claim time and lease expiry, and those of one submit their
    # creation time, so most conversions repeat one already made (a conversion costs ~2 µs, a hit ~0.1 µs).
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen
class QueueSettings:
    """What a queue's owner chooses; every field can be changed later with ``update_queue``."""

    description: str = ""
    max_retries: int = 3
    claim_timeout: int = 600
    dedupe: bool = False
    retry_delay: float = 1.0
    retry_delay_max: float = 300.0
    retention: int = 7 * 86400

    def to_redis(self) -> list[str]:
        return settings_to_redis(attrs.asdict(self))


def settings_to_redis(fields: dict[str, Any]) -> list[str]:
    """Flattens settings into the field/value list the Lua library stores in the meta hash."""
    out: list[str] = []
    for name, value in fields.items():
        if isinstance(value, bool):
            value = "1" if value else "0"
        out += [name, str(value)]
    return out


def _number(raw: str) -> int | float:
    value = float(raw)
    return int(value) if value.is_integer() else value


@attrs.frozen
class QueueInfo:
    name: str
    settings: QueueSettings
    paused: bool
    created_at: str
    counts: dict[str, int]
    oldest_pending_at: str
    workers: int

    @classmethod
    def from_reply(cls, name: str, reply: list[Any]) -> QueueInfo:
        raw = dict(zip(reply[::2], reply[1::2]))
        settings = QueueSettings(
            description=raw.get("description", ""),
            max_retries=int(raw["max_retries"]),
            claim_timeout=int(raw["claim_timeout"]),
            dedupe=raw.get("dedupe") == "1",
            retry_delay=_number(raw["retry_delay"]),
            retry_delay_max=_number(raw["retry_delay_max"]),
            retention=int(raw["retention"]),
        )
        return cls(
            name=name,
            settings=settings,
            paused=raw.get("paused") == "1",
            created_at=iso(raw.get("created_at")),
            counts={s: int(raw[f"count:{s}"]) for s in STATUSES},
            oldest_pending_at=iso(raw.get("oldest_pending")),
            workers=int(raw.get("workers", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **attrs.asdict(self.settings),
            **self.counts,
            "paused": self.paused,
            "created_at": self.created_at,
            "oldest_pending_at": self.oldest_pending_at,
            "workers": self.workers,
        }


@attrs.frozen
class Job:
    """A job as the API shows it. ``payload`` and ``result`` stay raw JSON text: they are never decoded."""

    id: str
    queue: str
    status: str
    payload: str
    result: str | None
    error: str
    retries: int
    priority: int
    created_at: str
    claimed_at: str
    completed_at: str
    run_at: str
    lease_id: str
    lease_expires_at: str
    worker: str
    history: list[dict[str, Any]] | None = None

    @classmethod
    def from_record(cls, queue: str, record: list[str], history: list[str] | None = None) -> Job:
        raw = dict(zip(record[::2], record[1::2]))
        claimed = raw.get("status") == "claimed"
        return cls(
            id=raw["id"],
            queue=queue,
            status=raw["status"],
            payload=raw["payload"],
            result=raw.get("result") or None,
            error=raw.get("error", ""),
            retries=int(raw.get("retries", 0)),
            priority=int(raw.get("priority", 0)),
            created_at=iso(raw.get("created_at")),
            claimed_at=iso(raw.get("claimed_at")),
            completed_at=iso(raw.get("completed_at")),
            run_at=iso(raw.get("run_at")),
            lease_id=raw.get("lease", "") if claimed else "",
            lease_expires_at=iso(raw.get("lease_exp")) if claimed else "",
            worker=raw.get("worker", ""),
            history=None if history is None else [_history_entry(h) for h in history],
        )

    @classmethod
    def from_values(cls, queue: str, values: list[Any], history: list[str] | None = None) -> Job:
        """A job from the values of the Lua library's RECORD fields, in that order (claim, get_job and
        list_jobs reply so: no field names to decode and pair up)."""
        (
            id_,
            status,
            payload,
            result,
            error,
            retries,
            priority,
            created_at,
            claimed_at,
            completed_at,
            run_at,
            lease,
            lease_exp,
            worker,
        ) = values
        claimed = status == "claimed"
        return cls(
            id=id_,
            queue=queue,
            status=status,
            payload=payload,
            result=result or None,
            error=error or "",
            retries=int(retries or 0),
            priority=int(priority or 0),
            created_at=iso(created_at),
            claimed_at=iso(claimed_at),
            completed_at=iso(completed_at),
            run_at=iso(run_at),
            lease_id=(lease or "") if claimed else "",
            lease_expires_at=iso(lease_exp) if claimed else "",
            worker=worker or "",
            history=None if history is None else [_history_entry(h) for h in history],
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "queue": self.queue,
            "status": self.status,
            "payload": orjson.Fragment(self.payload),
            "result": orjson.Fragment(self.result) if self.result is not None else None,
            "error": self.error,
            "retries": self.retries,
            "priority": self.priority,
            "created_at": self.created_at,
            "claimed_at": self.claimed_at,
            "completed_at": self.completed_at,
            "run_at": self.run_at,
            "lease_id": self.lease_id,
            "lease_expires_at": self.lease_expires_at,
            "worker": self.worker,
        }
        if self.history is not None:
            out["history"] = self.history
        return out


def _history_entry(raw: str) -> dict[str, Any]:
    """One history event from its JSON text, times turned into ISO strings."""
    entry = orjson.loads(raw)
    entry["at"] = iso(entry["at"])
    if "run_at" in entry:
        entry["run_at"] = iso(entry["run_at"])
    if "until_ms" in entry:
        entry["until"] = iso(entry.pop("until_ms"))
    return entry


@attrs.frozen
class NewJob:
    """A job to submit: its payload already encoded as JSON text."""

    payload: str
    priority: int = 0
    run_at_ms: int = 0
    dedupe_hash: str = ""


@attrs.frozen
class Submitted:
    id: str
    status: str
    created_at: str
    skipped: bool


class _JobIds:
    """UUIDv7 job ids: they sort by creation time, which orders job listings without a separate score."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def new(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                # Same (or a stepped-back) millisecond: count up so ids from one process stay ordered.
                ms = self._last_ms
                self._seq += 1
                if self._seq > 0xFFF:
                    ms += 1
                    self._seq = 0
            else:
                self._seq = 0
            self._last_ms = ms
            seq = self._seq
        rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
        value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_job_id = _JobIds().new

# Every id ``new_job_id`` makes, and nothing else: a UUIDv7 in lower-case hex (version 7, RFC 9562 variant). A
# list cursor is such an id: Redis would page from any string (ids compare as text), so the API refuses others.
JOB_ID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
