"""The OpenAPI 3.1 document, generated from the declared operations and shapes, and the reference page that shows
it (Swagger UI, vendored in ``reference/``)."""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path
from typing import Any

import attrs
import trio

from starq.worker_kit.errors import NotFound

from . import shapes
from .operations import OPERATIONS, Operation
from .schema import Schema

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "Malformed JSON",
    401: "Missing or wrong X-API-Key",
    404: "Queue or job not found",
    409: "Conflict with the current state",
    413: "Too large",
    422: "Schema violation",
    503: "Store unavailable or shutting down",
}


def _schemas() -> dict[str, Any]:
    found: dict[str, Schema] = {}

    def visit(schema: Schema | None) -> None:
        if schema is None or schema.name in found:
            return
        found[schema.name] = schema
        for field in schema.fields:
            if isinstance(field.items, Schema):
                visit(field.items)

    for doc in OPERATIONS:
        visit(doc.body)
        for response in doc.responses.values():
            visit(response)
    visit(shapes.Error)
    return {name: schema.json_schema() for name, schema in sorted(found.items())}


def build_openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for doc in OPERATIONS:
        op: dict[str, Any] = {"summary": doc.summary, "tags": [doc.tag], "operationId": _operation_id(doc)}
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in doc.params]
        if doc.query is not None:
            params += [
                {"name": f.name, "in": "query", "required": False, "schema": f.json_schema()} for f in doc.query.fields
            ]
        if params:
            op["parameters"] = params
        if doc.body is not None:
            op["requestBody"] = {
                "required": doc.body.needs_body,
                "content": {"application/json": {"schema": {"$ref": doc.body.ref}}},
            }
        responses: dict[str, Any] = {}
        for status, schema in doc.responses.items():
            responses[str(status)] = _response(status, schema)
        errors = [404] if "{" in doc.path else []
        if doc.body is not None:
            errors += [400, 413, 422]
        if doc.query:
            errors += [422]
        if doc.auth != "none":
            errors += [401]
        errors += [503]
        for status in errors:
            responses.setdefault(str(status), _response(status, shapes.Error))
        op["responses"] = responses
        if doc.auth == "write":
            op["security"] = [{"apiKey": []}]
        elif doc.auth == "read":
            # A key only when the server runs with read auth: optional, so a client holding one (the reference
            # page's "Try it" too) sends it.
            op["security"] = [{}, {"apiKey": []}]
        paths.setdefault(doc.path, {})[doc.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Starq",
            "version": "1",
            "description": "A work queue over Redis Streams; workers speak "
            'plain HTTP. Errors are {"detail", "error"}; see docs/api.md for every limit.',
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }


def _response(status: int, schema: Schema | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": STATUS_TEXT.get(status, str(status))}
    if schema is not None:
        out["content"] = {"application/json": {"schema": {"$ref": schema.ref}}}
    return out


def _operation_id(doc: Operation) -> str:
    """``get_queues_jobs`` lists, ``get_queues_jobs_job`` reads one: a path ending in a parameter adds its name,
    so that the ids are unique, as OpenAPI requires (Swagger UI keys its state by them)."""
    parts = [p for p in doc.path.replace("/api/v1/", "").split("/") if p]
    words = [p for p in parts if not p.startswith("{")]
    if parts[-1].startswith("{"):
        words.append(parts[-1][1:-1])
    return doc.method.lower() + "_" + "_".join(words).replace("-", "_")


# -- the reference page ---------------------------------------------------------------------------------------

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"
ASSET_PATH = DOCS_PATH + "/{asset}"
REFERENCE = Path(__file__).parent / "reference"
# The page's files, in the order the page loads them: Swagger UI (vendored, see its README) and the script that
# starts it. Each is served under a name carrying a hash of its content, cached for good: an update is a new name.
_FILES = ("swagger-ui/swagger-ui.css", "swagger-ui/swagger-ui-bundle.js", "reference.js")
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# Swagger UI runs from files of this origin with no inline script and no eval; its stylesheet draws icons from
# data: URIs, and everything it renders sets styles through the DOM (which style-src does not govern), so
# style-src 'self' suffices. "Try it" requests go to this origin only. docs/security.md says the same for readers.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
ASSET_CACHE = "public, max-age=31536000, immutable"


@attrs.frozen
class Asset:
    """A file of the reference page: the name it is served under, its bytes and their content type."""

    name: str
    body: bytes
    content_type: str


@functools.cache
def assets() -> dict[str, Asset]:
    """The page's files by their path in ``reference/``, read once."""
    found = {}
    for file in _FILES:
        path = REFERENCE / file
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:12]
        found[file] = Asset(f"{path.stem}.{digest}{path.suffix}", body, _TYPES[path.suffix])
    return found


def asset(name: str) -> Asset:
    """The file served as ``name``.

    Raises:
        NotFound: no file of the page has that name (an old hash included).
    """
    for candidate in assets().values():
        if candidate.name == name:
            return candidate
    raise NotFound(f"no file {name!r} in the reference page")


@functools.cache
def docs_page() -> bytes:
    """The page: Swagger UI's files and the script that points it at the OpenAPI document."""
    files = assets()
    styles = "".join(
        f'<link rel="stylesheet" href="{ASSET_PATH.format(asset=a.name)}">'
        for a in files.values()
        if a.name.endswith(".css")
    )
    scripts = "".join(
        f'<script src="{ASSET_PATH.format(asset=a.name)}"></script>' for a in files.values() if a.name.endswith(".js")
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Starq API reference</title>{styles}</head><body>"
        f'<noscript><p>This reference runs in JavaScript. The API\'s OpenAPI document is <a href="{OPENAPI_PATH}">'
        f"{OPENAPI_PATH}</a>.</p></noscript>"
        f'<div id="reference" data-openapi="{OPENAPI_PATH}"></div>{scripts}</body></html>'
    ).encode()


# Served names → gzipped bodies, made on first request: once per file and process.
_GZIPPED: dict[str, bytes] = {}


async def gzipped(found: Asset) -> bytes:
    body = _GZIPPED.get(found.name)
    if body is None:
        # Off the event loop: Swagger UI's bundle takes about 50 ms (1.7 MB → 460 KB).
        body = await trio.to_thread.run_sync(functools.partial(gzip.compress, found.body, 6, mtime=0))
        _GZIPPED[found.name] = body
    return body


def accepts_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether ``Accept-Encoding`` lists gzip with a weight above zero (RFC 9110 §12.5.3)."""
    for name, value in headers:
        if name.lower() != b"accept-encoding":
            continue
        for item in value.split(b","):
            coding, *params = item.split(b";")
            if coding.strip().lower() != b"gzip":
                continue
            weight = 1.0
            for param in params:
                key, _, number = param.strip().partition(b"=")
                if key.lower() == b"q":
                    try:
                        weight = float(number)
                    except ValueError:
                        weight = 0.0
            return weight > 0
    return False
