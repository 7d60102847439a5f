"""The engine's values: queue info, jobs, and how they read from the Lua library's replies.

A job's fields are declared once, in ``JOB_FIELDS``: the name the API shows, the record field the Lua library
keeps it in, and how its text reads. The library returns records as the values of ``RECORD`` (the stored names,
in that order; ``library.py`` writes the list into the library), so neither side decodes field names per job and
neither reads a field by its position.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, Self, TypeVar, overload

import attrs
import orjson

from starq.worker_kit.protocol import FINISHED_STATUSES, JOB_STATUSES, QUEUE_DEFAULTS, QUEUE_SETTINGS

STATUSES = JOB_STATUSES
T = TypeVar("T")


def iso(ms: str | int | None) -> str:
    """Milliseconds since the epoch as an ISO 8601 UTC string; "" when unset."""
    if ms is None or ms == "" or ms is False:
        return ""
    return _iso(int(ms))


@functools.lru_cache(maxsize=4096)
def _iso(ms: int) -> str:
    # Cached: the jobs of one claim share their claim time and lease expiry, and those of one submit their
    # creation time, so most conversions repeat one already made (a conversion costs ~2 µs, a hit ~0.1 µs).
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def settings_to_redis(fields: Mapping[str, Any]) -> list[str]:
    """Flattens settings into the field/value list the Lua library stores in the meta hash (objects and null as
    JSON text)."""
    out: list[str] = []
    for name, value in fields.items():
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif value is None or isinstance(value, dict):
            text = orjson.dumps(value).decode()
        else:
            text = str(value)
        out += [name, text]
    return out


def _number(raw: str) -> int | float:
    value = float(raw)
    return int(value) if value.is_integer() else value


# How each JSON type of a queue setting reads from the text the meta hash holds.
_SETTING_READERS: dict[str, Callable[[str], Any]] = {
    "string": str,
    "integer": int,
    "number": _number,
    "boolean": lambda raw: raw == "1",
    "object": orjson.loads,
}


@attrs.frozen
class QueueInfo:
    name: str
    settings: dict[str, Any]  # every setting of protocol.QUEUE_SETTINGS, by name
    paused: bool
    created_at: str
    counts: dict[str, int]
    oldest_pending_at: str
    workers: int
    held_by_key: int

    @classmethod
    def from_reply(cls, name: str, reply: list[Any]) -> QueueInfo:
        raw = dict(zip(reply[::2], reply[1::2]))
        settings = {
            s.name: _SETTING_READERS[s.type](raw[s.name]) if s.name in raw else s.default for s in QUEUE_SETTINGS
        }
        return cls(
            name=name,
            settings=settings,
            paused=raw.get("paused") == "1",
            created_at=iso(raw.get("created_at")),
            counts={s: int(raw[f"count:{s}"]) for s in STATUSES},
            oldest_pending_at=iso(raw.get("oldest_pending")),
            workers=int(raw.get("workers", 0)),
            held_by_key=int(raw.get("held_by_key") or 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.settings,
            **self.counts,
            "paused": self.paused,
            "created_at": self.created_at,
            "oldest_pending_at": self.oldest_pending_at,
            "workers": self.workers,
            "held_by_key": self.held_by_key,
        }


def queue_settings(chosen: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every setting of a new queue: the ones ``chosen``, the defaults for the rest."""
    unknown = set(chosen or ()) - QUEUE_DEFAULTS.keys()
    if unknown:
        raise TypeError(f"unknown queue settings: {', '.join(sorted(unknown))}")
    return {**QUEUE_DEFAULTS, **(chosen or {})}


class JobField(NamedTuple):
    """One field of a job as the API shows it."""

    name: str  # in the API
    stored: str  # the field of the job's record in the store
    # How the stored text reads: "text", "int" (0 when unset), "int?" (None when unset), "time" (ms → ISO 8601),
    # "json" (raw JSON text, None when unset) or "list" (a raw JSON array, [] when unset).
    kind: str
    type: str | None  # its JSON type (None: any JSON value)
    description: str = ""
    while_claimed: bool = False  # shown only while the job is claimed ("" otherwise)


JOB_FIELDS: tuple[JobField, ...] = (
    JobField("id", "id", "text", "string"),
    JobField("status", "status", "text", "string"),
    JobField("payload", "payload", "json", "object", "The job's data: the JSON object it was submitted with."),
    JobField("result", "result", "json", None, "What the worker reported on completion (null until then)."),
    JobField("error", "error", "text", "string", "The last failure's error text."),
    JobField("retries", "retries", "int", "integer", "Times the job was handed out again after its first claim."),
    JobField("priority", "priority", "int", "integer", "0-9; higher is claimed first."),
    JobField("created_at", "created_at", "time", "string"),
    JobField("claimed_at", "claimed_at", "time", "string", "When the current (or last) attempt was claimed."),
    JobField("completed_at", "completed_at", "time", "string", 'When the job finished ("" until then).'),
    JobField("run_at", "run_at", "time", "string", 'When a scheduled job becomes ready ("" otherwise).'),
    JobField(
        "lease_id", "lease", "text", "string", "While claimed: the lease to quote when reporting.", while_claimed=True
    ),
    JobField("lease_expires_at", "lease_exp", "time", "string", while_claimed=True),
    JobField("worker", "worker", "text", "string", "The worker that claimed the job last."),
    JobField("key", "key", "text", "string", "Its ordering and concurrency group (the queue's key_concurrency)."),
    JobField("unique_key", "uk", "text", "string", "Another submit with this key is skipped while this job holds it."),
    JobField("unique_for", "uf", "int?", "integer", "Seconds unique_key is held from submission (else until done)."),
    JobField("timeout", "to", "int?", "integer", "Seconds one attempt may run (null: no limit)."),
    JobField("max_retries", "mr", "int?", "integer", "Retries for this job (null: the queue's max_retries)."),
    JobField("tags", "tags", "list", "array", "Labels to list it by (GET …/jobs?tag=)."),
    JobField("schedule", "sch", "text", "string", "The schedule that made it, if one did."),
    JobField("depends_on", "deps", "list", "array", "Jobs of the queue it waits for, in the order given."),
    JobField(
        "on_dependency_failure", "odf", "text", "string",
        'With depends_on: "cancel" (a dead or cancelled dependency cancels it) or "run" ("" without).',
    ),
    JobField("batch_id", "bat", "text", "string", "The batch it was submitted in, if any."),
    JobField("progress", "progress", "json", None, "The latest progress its worker reported (null before)."),
)  # fmt: skip
# The record fields the Lua library returns for a job, in this order.
RECORD: tuple[str, ...] = tuple(f.stored for f in JOB_FIELDS)

# How a field of each kind reads its stored value v ("" or false when the record lacks it), as an expression
# for _fields_of below.
_READ_EXPRESSIONS = {
    "text": "{v} or ''",
    "int": "int({v}) if {v} else 0",
    "int?": "int({v}) if {v} else None",
    "time": "_iso(int({v})) if {v} else ''",
    "json": "{v} or None",
    "list": "{v} or '[]'",
}


def _make_fields_of() -> Callable[[Sequence[Any]], dict[str, Any]]:
    """The function that turns a record's values (RECORD's order) into a job's fields by name, made from
    JOB_FIELDS as one dict literal (as attrs makes its ``__init__``): a claim converts up to hundreds of records,
    and a comprehension calling a reader per field cost 4 µs per record against ~2 for the literal."""
    items = []
    for i, f in enumerate(JOB_FIELDS):
        read = _READ_EXPRESSIONS[f.kind]
        value = read.format(v=f"v[{i}]")
        if f.while_claimed:
            value = f"({value}) if claimed else ({read.format(v='None')})"
        items.append(f"{f.name!r}: {value}")
    source = (
        "def fields_of(v):\n"
        f"    claimed = v[{RECORD.index('status')}] == 'claimed'\n"
        f"    return {{{', '.join(items)}}}\n"
    )
    namespace: dict[str, Any] = {"_iso": _iso}
    # The source is made above from JOB_FIELDS alone: nothing from outside reaches it.
    exec(compile(source, "<job fields_of>", "exec"), namespace)
    return namespace["fields_of"]


_fields_of = _make_fields_of()
# Each field as an empty record shows it (all immutable): read once, not per job of every submit.
_EMPTY = _fields_of((None,) * len(RECORD))
# Fields kept as raw JSON text, rendered as such (never decoded by the server).
_JSON_FIELDS = tuple(f.name for f in JOB_FIELDS if f.kind in ("json", "list"))
# An empty list as rendered JSON (immutable, so shared by every job that has one).
_EMPTY_LIST_JSON = orjson.Fragment("[]")


def _as_json(text: str | None) -> orjson.Fragment | None:
    """A JSON field's raw text as the answer embeds it."""
    return _EMPTY_LIST_JSON if text == "[]" else orjson.Fragment(text) if text is not None else None


# An empty record as ``Job.to_json`` shows it.
_EMPTY_JSON = {**_EMPTY, **{name: _as_json(_EMPTY[name]) for name in _JSON_FIELDS}}


class _Field(Generic[T]):
    """A job's field read as a typed attribute (``job.status``: ``job.fields["status"]``)."""

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, job: None, owner: type) -> Self: ...
    @overload
    def __get__(self, job: Job, owner: type) -> T: ...
    def __get__(self, job: Job | None, owner: type) -> T | Self:
        return self if job is None else job.fields[self.name]


class Job:
    """A job as the API shows it: its fields by ``JOB_FIELDS`` name. JSON fields (payload, result) stay raw JSON
    text: the server never decodes them."""

    __slots__ = ("dependents", "fields", "history", "queue")

    def __init__(
        self,
        queue: str,
        fields: dict[str, Any],
        history: list[dict[str, Any]] | None = None,
        dependents: list[str] | None = None,
    ) -> None:
        self.queue = queue
        self.fields = fields
        self.history = history
        self.dependents = dependents

    @classmethod
    def from_record(
        cls, queue: str, values: Sequence[Any], history: list[str] | None = None, dependents: list[str] | None = None
    ) -> Job:
        """A job from a record the Lua library returned (RECORD's values) and, for one job, its history and the
        jobs that depend on it."""
        if len(values) != len(RECORD):
            raise ValueError(f"a job record has {len(RECORD)} values, not {len(values)}")
        return cls(
            queue, _fields_of(values), None if history is None else [_history_entry(h) for h in history], dependents
        )

    @staticmethod
    def new_json(queue: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A job that has just been stored, as ``to_json`` shows it: the given fields (JSON ones as text), every
        other one empty. Built straight as JSON: a batch submit renders a hundred of them."""
        out = {"id": fields["id"], "queue": queue, **_EMPTY_JSON, **fields}
        for name in _JSON_FIELDS:
            if name in fields:
                out[name] = _as_json(fields[name])
        return out

    def __getattr__(self, name: str) -> Any:
        # Any declared field reads as an attribute too (``job.run_at``); the typed ones below are those the
        # server's own code reads.
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    # The fields the server's own code reads, typed; any other reads through __getattr__.
    id: _Field[str] = _Field()
    status: _Field[str] = _Field()
    payload: _Field[str] = _Field()
    result: _Field[str | None] = _Field()
    error: _Field[str] = _Field()
    retries: _Field[int] = _Field()
    lease_id: _Field[str] = _Field()
    created_at: _Field[str] = _Field()
    claimed_at: _Field[str] = _Field()

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.fields["id"], "queue": self.queue, **self.fields}
        for name in _JSON_FIELDS:
            out[name] = _as_json(out[name])
        if self.history is not None:
            out["history"] = self.history
        if self.dependents is not None:
            out["dependents"] = self.dependents
        return out

    @property
    def finished(self) -> bool:
        return self.fields["status"] in FINISHED_STATUSES


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
    """A job to submit: its payload already encoded as JSON text, its options (``JobOptions.to_json``) too."""

    payload: str
    priority: int = 0
    run_at_ms: int = 0
    dedupe_hash: str = ""
    options: str = ""


@attrs.frozen
class JobOptions:
    """What a job may be given besides its payload, priority and due time (all optional)."""

    key: str | None = None
    unique_key: str | None = None
    unique_for: int | None = None
    timeout: int | None = None
    max_retries: int | None = None
    tags: tuple[str, ...] = ()
    # Job ids of the queue, or "#<i>" for item i of the same submit (an earlier one).
    depends_on: tuple[str, ...] = ()
    on_dependency_failure: str = "cancel"

    @classmethod
    def given(cls, item: Mapping[str, Any], **workflow: Any) -> JobOptions:
        """The options a submit's item or a schedule's definition gives (by their API names), with ``workflow``'s
        (a submit's depends_on and on_dependency_failure: given here, not added with attrs.evolve afterwards,
        which cost ~2 µs per job of a batch)."""
        return cls(
            key=item.get("key"),
            unique_key=item.get("unique_key"),
            unique_for=item.get("unique_for"),
            timeout=item.get("timeout"),
            max_retries=item.get("max_retries"),
            tags=tuple(item.get("tags") or ()),
            **workflow,
        )

    def to_json(self) -> str:
        """The options as the Lua library reads them (record field names; "" when none is set)."""
        if self is NO_OPTIONS:
            return ""  # the usual case, and every job of a plain batch: nothing to look at
        given: dict[str, Any] = {
            stored: value
            for stored, value in (
                ("key", self.key),
                ("uk", self.unique_key),
                ("uf", self.unique_for),
                ("to", self.timeout),
                ("mr", self.max_retries),
            )
            if value is not None and value != ""
        }
        if self.tags:
            given["tags"] = list(self.tags)
        if self.depends_on:
            given["deps"] = list(self.depends_on)
            given["odf"] = self.on_dependency_failure
        return orjson.dumps(given).decode() if given else ""


# The options of a job given none: shared, so a batch of plain jobs builds no options per job.
NO_OPTIONS = JobOptions()


@attrs.frozen
class Callback:
    """The job a batch submits once all its jobs have finished: its payload (JSON text of an object, without
    "batch", which the engine adds), priority and queue ("": the batch's own)."""

    payload: str
    priority: int = 0
    queue: str = ""

    def to_json(self) -> str:
        return orjson.dumps({"payload": self.payload, "priority": self.priority, "queue": self.queue}).decode()


@attrs.frozen
class NewBatch:
    """A submit's jobs as one batch: its id, and its callback with the job id chosen for it."""

    id: str
    callback: Callback | None = None
    callback_id: str = ""


@attrs.frozen
class Batch:
    id: str
    total: int
    completed: int
    failed: int
    cancelled: int
    created_at: str
    finished_at: str
    callback_job_id: str | None

    @property
    def finished(self) -> bool:
        return bool(self.finished_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "total": self.total,
            "pending": self.total - self.completed - self.failed - self.cancelled,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "finished": self.finished,
            "callback_job_id": self.callback_job_id,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


@attrs.frozen
class Event:
    """One entry of a queue's event log: its number (the SSE id), what happened, to which job, the job's status
    after it, when, and more fields of that kind of event (JSON text of an object, "" when none)."""

    number: int
    kind: str
    job_id: str
    status: str
    at_ms: int
    extra: str = ""

    def to_json(self, queue: str) -> dict[str, Any]:
        out: dict[str, Any] = {"job_id": self.job_id, "status": self.status, "at": iso(self.at_ms), "queue": queue,
                               "event": self.kind}  # fmt: skip
        if self.extra:
            out.update(orjson.loads(self.extra))
        return out


@attrs.frozen
class EventPage:
    """Events read from a queue's log, and the numbers of the oldest and newest it holds (0 when empty)."""

    first: int
    last: int
    events: list[Event]


@attrs.frozen
class Submitted:
    id: str
    status: str
    created_at: str
    skipped: bool
    error: str = ""  # why a job was cancelled as it was submitted (a dependency had failed)


# Every id ``new_job_id`` and ``new_job_ids`` make, and nothing else: a UUIDv7 in lower-case hex (version 7, RFC
# 9562 variant). A list cursor is such an id: Redis would page from any string (ids compare as text), so the API
# refuses others.
JOB_ID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_JOB_ID = re.compile(JOB_ID_PATTERN)


def is_job_id(value: str) -> bool:
    """Whether ``value`` could be an id made by ``new_job_id``."""
    return _JOB_ID.fullmatch(value) is not None


class _JobIds:
    """UUIDv7 job ids: they sort by creation time, which orders job listings without a separate score."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def many(self, count: int) -> list[str]:
        """``count`` ids in order, made under one lock and from one read of random bytes (a batch submit's)."""
        stamps = []
        with self._lock:
            ms, seq = time.time_ns() // 1_000_000, self._seq
            for _ in range(count):
                if ms <= self._last_ms:
                    # Same (or a stepped-back) millisecond: count up so ids from one process stay ordered.
                    ms = self._last_ms
                    seq += 1
                    if seq > 0xFFF:
                        ms += 1
                        seq = 0
                else:
                    seq = 0
                self._last_ms = ms
                stamps.append((ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62))
            self._seq = seq
        randoms = os.urandom(8 * count)
        ids = []
        for i, stamp in enumerate(stamps):
            h = f"{stamp | (int.from_bytes(randoms[8 * i : 8 * i + 8]) & 0x3FFF_FFFF_FFFF_FFFF):032x}"
            ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        return ids

    def new(self) -> str:
        return self.many(1)[0]


_job_ids = _JobIds()
new_job_id = _job_ids.new
new_job_ids = _job_ids.many
