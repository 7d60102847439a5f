"""HTTP plumbing shared by the API blueprints: JSON in and out, errors, auth, and the route registry that the
OpenAPI document is generated from."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from typing import Any

import attrs
import orjson
from quart import Blueprint, Quart, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..claims import ClaimBroker
from ..engine.engine import Engine
from ..engine.errors import (
    BadRequest,
    JobNotFound,
    MethodNotAllowed,
    NotFound,
    QueueNotFound,
    StarqError,
    TooLarge,
    Unauthorized,
)
from ..settings import Settings
from .schema import Schema

log = logging.getLogger("starq.http")

QUEUE_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]*"
QUEUE_NAME_MAX = 128
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)
_JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@attrs.frozen
class AppState:
    engine: Engine
    broker: ClaimBroker
    settings: Settings


def state() -> AppState:
    return current_app.extensions["starq"]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, content_type="application/json")


def error_response(error: StarqError) -> Response:
    return json_response({"detail": error.detail, "error": error.code}, error.status)


async def read_body(schema: Schema) -> dict[str, Any]:
    """The request body parsed as JSON and validated; an empty body counts as ``{}``."""
    limit = state().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the request body is larger than the {limit}-byte limit")
    try:
        raw = await request.get_data(cache=False)
    except RequestEntityTooLarge as exc:
        raise TooLarge(f"the request body is larger than the {limit}-byte limit") from exc
    if len(raw) > limit:
        raise TooLarge(f"the request body is larger than the {limit}-byte limit")
    if not raw.strip():
        return schema.parse({})
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    return schema.parse(data)


def queue_name(name: str) -> str:
    """A queue name from a path. A name that could not exist is simply not found (it never reaches Redis, where
    a brace in it would break the key's hash tag)."""
    if len(name) > QUEUE_NAME_MAX or not _QUEUE_NAME.fullmatch(name):
        raise QueueNotFound(f"queue {name!r} not found")
    return name


def job_id(value: str) -> str:
    if not _JOB_ID.fullmatch(value):
        raise JobNotFound(f"job {value!r} not found")
    return value


# -- the route registry ------------------------------------------------------------------------------------


@attrs.frozen
class RouteDoc:
    method: str
    path: str
    summary: str
    tag: str
    body: Schema | None
    responses: dict[int, Schema | None]
    query: tuple[Any, ...] = ()
    auth: str = "write"  # "write", "read" or "none"


ROUTES: list[RouteDoc] = []


def route(
    bp: Blueprint,
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    body: Schema | None = None,
    responses: dict[int, Schema | None],
    query: tuple[Any, ...] = (),
) -> Callable:
    """Registers a handler on ``bp`` and records how it looks in the OpenAPI document."""
    auth = "write" if method in WRITE_METHODS else ("none" if path == "/api/health" else "read")
    ROUTES.append(RouteDoc(method, path, summary, tag, body, responses, query, auth))
    flask_path = re.sub(r"\{(\w+)\}", r"<\1>", path)

    def decorate(handler: Callable) -> Callable:
        bp.add_url_rule(flask_path, view_func=handler, methods=[method], endpoint=f"{method}:{path}")
        return handler

    return decorate


# -- auth and errors ---------------------------------------------------------------------------------------


def key_is_valid(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Constant-time check against every configured key (no early exit, so timing tells nothing)."""
    if not presented:
        return False
    given = presented.encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode())
    return ok


def install(app: Quart) -> None:
    """Installs auth and the JSON error handlers on the app."""

    @app.before_request
    async def check_api_key() -> None:
        if request.routing_exception is not None:
            # No such route, or no such method on it: 404/405 first. It reveals nothing a key protects (the
            # routes are public in the OpenAPI document); queues and jobs are looked up only after auth.
            return
        settings = state().settings
        if request.method in WRITE_METHODS:
            needed = request.path.startswith("/api/")
        else:
            needed = settings.read_auth and request.path.startswith("/api/") and request.path not in settings.open_paths
        if needed and not key_is_valid(request.headers.get("X-API-Key"), settings.accepted_keys):
            raise Unauthorized("a valid X-API-Key header is required")

    @app.errorhandler(StarqError)
    async def starq_error(error: StarqError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            return error_response(NotFound(f"no route for {request.path}"))
        if status == 405:
            response = error_response(MethodNotAllowed(f"{request.method} is not allowed on {request.path}"))
            # RFC 9110: a 405 must say which methods the resource does allow.
            allowed = getattr(error, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
        if status == 413:
            return error_response(TooLarge("the request body is too large"))
        err = StarqError(error.description or error.name)
        err.status, err.code = status, error.name.lower().replace(" ", "_")
        return error_response(err)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        err = StarqError("internal server error")
        err.code = "internal"
        return error_response(err)
