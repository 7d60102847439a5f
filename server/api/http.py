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
from werkzeug.exceptions import MethodNotAllowed as MethodNotAllowedHTTP

from ..claims import ClaimBroker
from ..engine.engine import Engine
from ..engine.errors import (
    BadRequest,
    HeadersTooLarge,
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
# ``…/jobs/claim`` and ``…/jobs/ack`` are POST routes of their own, and no job has such an id (the server makes
# every id, a UUIDv7). But werkzeug, finding no rule for another method on them, matches ``…/jobs/<job>``
# instead: ``GET …/jobs/claim`` would look up a job called "claim" (404), and the Allow header of a 405 or an
# OPTIONS answer would list the methods of ``…/jobs/<job>`` too. These paths answer as any POST-only path does.
_POST_ONLY_JOB_PATHS = re.compile(r"/api/v1/queues/[^/]+/jobs/(?:claim|ack)")
_POST_ONLY_METHODS = ("OPTIONS", "POST")  # what werkzeug lists for a POST route (Quart adds OPTIONS)


@attrs.frozen
class AppState:
    engine: Engine
    broker: ClaimBroker
    settings: Settings


def state() -> AppState:
    return current_app.extensions["starq"]


# Headers every response carries: no MIME sniffing, no framing, no referrer, and a CSP (``app.py`` adds them
# to Quart's responses, ``fastpath.py`` to its own). JSON needs no sources at all; an HTML view (the dashboard,
# the docs page) that needs more sets its own Content-Security-Policy, which is kept; any other HTML gets a
# strict default: no inline script or style.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
JSON_CONTENT_TYPE = "application/json"
# The ASGI headers of a JSON answer, in the order Quart sends them: content type and length, the security
# headers (added by the first after_request hook to run), then the request id (the last).
_JSON_HEADERS_BEFORE_LENGTH = ((b"content-type", JSON_CONTENT_TYPE.encode()),)
_JSON_HEADERS_AFTER_LENGTH = (
    *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS),
    (b"content-security-policy", API_CSP.encode()),
)


def render_json(data: Any) -> bytes:
    return orjson.dumps(data)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(render_json(data), status=status, content_type=JSON_CONTENT_TYPE)


def json_headers(length: int, request_id: str) -> list[tuple[bytes, bytes]]:
    """The ASGI response headers of a JSON answer of ``length`` bytes to request ``request_id``, exactly as a
    Quart response gets them from ``json_response`` and the app's after_request hooks."""
    return [
        *_JSON_HEADERS_BEFORE_LENGTH,
        (b"content-length", str(length).encode()),
        *_JSON_HEADERS_AFTER_LENGTH,
        (b"x-request-id", request_id.encode("latin1")),
    ]


def error_body(error: StarqError) -> bytes:
    return render_json({"detail": error.detail, "error": error.code})


def error_response(error: StarqError) -> Response:
    return Response(error_body(error), status=error.status, content_type=JSON_CONTENT_TYPE)


def body_too_large(limit: int) -> str:
    return f"the request body is larger than the {limit}-byte limit"


async def read_body(schema: Schema) -> dict[str, Any]:
    """The request body parsed as JSON and validated; an empty body counts as ``{}``."""
    limit = state().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(body_too_large(limit))
    try:
        raw = await request.get_data(cache=False)
    except RequestEntityTooLarge as exc:
        raise TooLarge(body_too_large(limit)) from exc
    return parse_body(raw, schema, limit)


def parse_body(raw: bytes, schema: Schema, limit: int) -> dict[str, Any]:
    """A request body (``raw``, all of it) parsed as JSON and validated against ``schema``."""
    if len(raw) > limit:
        raise TooLarge(body_too_large(limit))
    if not raw.strip():
        return schema.parse({})
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    return schema.parse(data)


def head_size(scope: dict[str, Any]) -> int:
    """About how many bytes the request line and headers took (what ``max_header_bytes`` bounds)."""
    return (
        len(scope["method"])
        + len(scope.get("raw_path", b""))
        + len(scope.get("query_string", b""))
        + sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    )


def check_head_size(scope: dict[str, Any], limit: int) -> None:
    # Hypercorn bounds a request head only while it arrives in pieces; one that comes whole in a single read
    # passes, so the same limit is checked again on what was parsed.
    size = head_size(scope)
    if size > limit:
        raise HeadersTooLarge(f"the request line and headers are about {size} bytes; the limit is {limit}")


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


def rule_of(path: str) -> str:
    """The Quart (werkzeug) rule of an OpenAPI path: ``/queues/{name}`` → ``/queues/<name>``."""
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


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
    flask_path = rule_of(path)

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
    async def check_key() -> Response | None:
        if _POST_ONLY_JOB_PATHS.fullmatch(request.path) and request.method != "POST":
            # Before auth, like any other 405 (see _POST_ONLY_JOB_PATHS).
            if request.method != "OPTIONS":
                raise MethodNotAllowedHTTP(valid_methods=_POST_ONLY_METHODS)
            response = Response("", status=200)
            response.headers["Allow"] = ", ".join(_POST_ONLY_METHODS)
            return response
        if request.routing_exception is not None:
            # No such route, or no such method on it: 404/405 first. It reveals nothing a key protects (the
            # routes are public in the OpenAPI document); queues and jobs are looked up only after auth.
            return
        check_api_key(request.method, request.path, request.headers.get("X-API-Key"), state().settings)
        return None

    @app.errorhandler(StarqError)
    async def starq_error(error: StarqError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        response = error_response(http_exception_error(error, request.method, request.path))
        allowed = getattr(error, "valid_methods", None)
        if error.code == 405 and allowed:
            # RFC 9110: a 405 must say which methods the resource does allow.
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        return error_response(internal_error(request.method, request.path))


def check_api_key(method: str, path: str, presented: str | None, settings: Settings) -> None:
    """Raises Unauthorized unless the request may go on: writes under /api/ always need a key, reads only with
    ``read_auth`` (and never on the open paths)."""
    if method in WRITE_METHODS:
        needed = path.startswith("/api/")
    else:
        needed = settings.read_auth and path.startswith("/api/") and path not in settings.open_paths
    if needed and not key_is_valid(presented, settings.accepted_keys):
        raise Unauthorized("a valid X-API-Key header is required")


def http_exception_error(error: HTTPException, method: str, path: str) -> StarqError:
    """The JSON error for an HTTP error raised by Quart or werkzeug (no route, a body too slow or too large)."""
    status = error.code or 500
    if status == 404:
        return NotFound(f"no route for {path}")
    if status == 405:
        return MethodNotAllowed(f"{method} is not allowed on {path}")
    if status == 413:
        return TooLarge("the request body is too large")
    err = StarqError(error.description or error.name)
    err.status, err.code = status, error.name.lower().replace(" ", "_")
    return err


def internal_error(method: str, path: str) -> StarqError:
    """Logs the exception being handled and returns the 500 answer for it (which says nothing about it)."""
    log.exception("unhandled error on %s %s", method, path)
    err = StarqError("internal server error")
    err.code = "internal"
    return err
