"""The OpenAPI 3.1 document and the reference page, generated from the declared operations and shapes."""

from __future__ import annotations

import functools
import html
from typing import Any

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


# The docs page is static HTML with one inline stylesheet and no script.
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


@functools.cache
def docs_page() -> str:
    """Built on first use, once every handler module has declared its operations."""
    rows = []
    for doc in OPERATIONS:
        body = f"<code>{html.escape(doc.body.name)}</code>" if doc.body else ""
        rows.append(
            f"<tr><td><b>{doc.method}</b></td><td><code>{html.escape(doc.path)}</code></td>"
            f"<td>{html.escape(doc.summary)}</td><td>{body}</td><td>{doc.auth}</td></tr>"
        )
    schemas = []
    for name, schema in _schemas().items():
        fields = "".join(
            f"<li><code>{html.escape(f)}</code> {html.escape(str(s.get('type', 'any')))}"
            f"{' = ' + html.escape(repr(s['default'])) if 'default' in s else ''}"
            f"{' — ' + html.escape(s['description']) if s.get('description') else ''}</li>"
            for f, s in schema["properties"].items()
        )
        schemas.append(f"<h3 id='{name}'>{name}</h3><ul>{fields}</ul>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Starq API</title>"
        "<style>body{font:14px system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
        "td{padding:.25rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}code{font-size:13px}</style>"
        "</head><body><h1>Starq API</h1><p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a>. "
        'Writes need an <code>X-API-Key</code> header. Errors are JSON <code>{"detail", "error"}</code>.</p>'
        "<table><tr><th>Method</th><th>Path</th><th>What</th><th>Body</th><th>Auth</th></tr>"
        + "".join(rows)
        + "</table><h2>Shapes</h2>"
        + "".join(schemas)
        + "</body></html>"
    )
