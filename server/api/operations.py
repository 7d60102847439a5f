"""Every API operation, declared once: method, path, body and query schemas, responses, auth, and its handler.

A handler module declares its operations with ``@operation(...)`` on a plain async function
``(state, request) -> answer``. From the registry below come the routing of ``service.py`` (no hand-written path
matching), the OpenAPI document and the docs page (``openapi.py``), and a test that docs/api.md names each one.
A handler's answer is ``(data, status)`` for JSON, a ``Reply`` for other content, or a ``Stream`` of bytes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import attrs

from starq.worker_kit.errors import (
    BatchNotFound,
    JobNotFound,
    MethodNotAllowed,
    NotFound,
    QueueNotFound,
    ScheduleNotFound,
    StarqError,
)

from .schema import Schema

if TYPE_CHECKING:
    from ..claims import Ledger
    from ..engine.engine import Engine
    from ..hub import Hub
    from ..metrics import Metrics
    from ..settings import Settings

QUEUE_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]*"
QUEUE_NAME_MAX = 128
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)
# What a job id in a path (or a list of ids) may look like; one that could not exist is simply not found.
JOB_ID_TEXT = r"[A-Za-z0-9._:-]{1,64}"
_JOB_ID = re.compile(JOB_ID_TEXT)
_ASSET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@attrs.frozen
class AppState:
    """What every handler works with: the engine, the hub (parked claims, outcome waiters, event feeds), the
    settings and the metrics."""

    engine: Engine
    hub: Hub
    settings: Settings
    metrics: Metrics


# ``Operation.waits`` of an operation that does its waiting inside ``Request.waiting()``.
PARKS = "<parks>"


@attrs.define(slots=True)
class Request:
    """One API request as a handler sees it: checked path parameters, validated body and query."""

    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any]
    query: dict[str, Any]
    scope: dict[str, Any]
    # The jobs a claim obtained for this request, until they reach the client (``claims.Ledger``).
    ledger: Ledger | None = None
    # For an operation that ``waits=PARKS``: the context to wait in (``async with request.waiting(): …``); the
    # client hanging up cancels what runs inside it. For any other operation, it does nothing.
    waiting: Callable[[], AbstractAsyncContextManager[Any]] = nullcontext

    @property
    def queue(self) -> str:
        """The queue named in the path (``{name}``)."""
        return self.params["name"]

    @property
    def job(self) -> str:
        """The job named in the path (``{job}``)."""
        return self.params["job"]


@attrs.frozen
class Reply:
    """An answer that is not JSON (a page, Prometheus' text format)."""

    body: bytes
    content_type: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Stream:
    """An answer sent as it is made (server-sent events): ``chunks`` until it ends or the client leaves."""

    chunks: AsyncGenerator[bytes, None]
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


Answer = tuple[Any, int] | Reply | Stream
Handler = Callable[[AppState, Request], Awaitable[Answer]]


@attrs.frozen
class Operation:
    method: str
    path: str  # as in the OpenAPI document: /api/v1/queues/{name}/jobs/{job}
    handler: Handler
    summary: str
    tag: str
    body: Schema | None = None
    query: Schema | None = None
    responses: Mapping[int, Schema | None] = attrs.field(factory=dict)
    # "write": a key always; "read": a key when the server runs with read auth; "none": never.
    auth: str = "read"
    # It may wait (a long-poll, a stream): the client hanging up cancels its handler. A name instead of True:
    # it waits only when that query parameter is given and not zero. PARKS: it may wait, and waits only inside
    # ``Request.waiting()``: an answer it gives without waiting costs no watch for the client leaving.
    waits: bool | str = False

    @property
    def params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    body: Schema | None = None,
    query: Schema | None = None,
    responses: Mapping[int, Schema | None],
    auth: str | None = None,
    waits: bool | str = False,
) -> Callable[[Handler], Handler]:
    """Declares the operation that ``handler`` answers (writes need a key unless ``auth`` says otherwise)."""

    def register(handler: Handler) -> Handler:
        needs = auth or ("write" if method in WRITE_METHODS else "read")
        OPERATIONS.append(Operation(method, path, handler, summary, tag, body, query, responses, needs, waits))
        return handler

    return register


# -- path parameters -----------------------------------------------------------------------------------------


def _path_parameter(
    not_found: type[StarqError], message: str, pattern: re.Pattern[str], longest: int | None = None
) -> Callable[[str], str]:
    """The check of one kind of path parameter: a value that could not exist is simply not found (it never reaches
    the store, where a brace in a queue name would break the key's hash tag). message: the error's text, with
    ``{!r}`` for the value."""

    def check(value: str) -> str:
        if (longest is not None and len(value) > longest) or not pattern.fullmatch(value):
            raise not_found(message.format(value))
        return value

    return check


queue_name = _path_parameter(QueueNotFound, "queue {!r} not found", _QUEUE_NAME, QUEUE_NAME_MAX)
job_id = _path_parameter(JobNotFound, "job {!r} not found", _JOB_ID)
# Schedules are named as queues are.
schedule_name = _path_parameter(ScheduleNotFound, "schedule {!r} not found", _QUEUE_NAME, QUEUE_NAME_MAX)
batch_id = _path_parameter(BatchNotFound, "batch {!r} not found", _JOB_ID)
# A file name of the reference page; which names exist, its handler knows.
asset_name = _path_parameter(NotFound, "no file {!r} in the reference page", _ASSET)

# How each kind of path parameter is checked, by its name in the path template.
PARAMS: dict[str, Callable[[str], str]] = {
    "name": queue_name, "job": job_id, "schedule": schedule_name, "batch": batch_id, "asset": asset_name,
}  # fmt: skip


# -- routing -------------------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("operations", "param", "param_node", "static")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.param: str | None = None
        self.param_node: _Node | None = None
        self.operations: dict[str, Operation] = {}


class Router:
    """Finds the operation of a method and path, segment by segment.

    A literal segment wins over a parameter (``…/jobs/claim`` is the claim resource, never the job "claim"), and
    a path that names a resource without the method gets 405 with the methods it has; HEAD is served as GET.
    """

    def __init__(self, operations: list[Operation]) -> None:
        self._root = _Node()
        for op in operations:
            node = self._root
            for part in op.path.strip("/").split("/"):
                if part.startswith("{"):
                    name = part[1:-1]
                    if node.param_node is None:
                        node.param, node.param_node = name, _Node()
                    assert node.param == name, f"{op.path}: one name per parameter position"
                    node = node.param_node
                else:
                    node = node.static.setdefault(part, _Node())
            assert op.method not in node.operations, f"{op.method} {op.path} declared twice"
            node.operations[op.method] = op

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation and its raw path parameters.

        Raises:
            NotFound: no resource has this path.
            MethodNotAllowed: the resource has no such method (``allowed`` lists those it has).
        """
        params: dict[str, str] = {}
        node = self._root
        for part in path.strip("/").split("/"):
            following = node.static.get(part)
            if following is None:
                following = node.param_node if part else None
                if following is None:
                    raise NotFound(f"no route for {path}")
                params[node.param] = part  # type: ignore[index]
            node = following
        found = node.operations.get("GET" if method == "HEAD" else method)
        if found is None:
            if not node.operations:
                raise NotFound(f"no route for {path}")
            raise MethodNotAllowed(f"{method} is not allowed on {path}", allowed=allowed_methods(node.operations))
        return found, params


def allowed_methods(operations: Mapping[str, Operation]) -> tuple[str, ...]:
    methods = set(operations) | {"OPTIONS"}
    if "GET" in methods:
        methods.add("HEAD")
    return tuple(sorted(methods))
