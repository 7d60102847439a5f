"""The OpenAPI document is generated from the code and covers every route the app serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from api.routes import READ_ROUTES, WRITE_ROUTES
from starq.server.api.operations import OPERATIONS
from starq.worker_kit.errors import SERVER_ERRORS

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


async def openapi(api) -> dict:
    r = await api.client.get("/api/openapi.json")
    assert r.status_code == 200
    return await r.get_json()


async def test_document_is_openapi_3_1_and_lists_every_contract_route(api):
    doc = await openapi(api)
    assert doc["openapi"].startswith("3.1")
    for method, path in [*WRITE_ROUTES, *READ_ROUTES, ("GET", "/api/health"), ("GET", "/api/v1/queues/{name}/stats")]:
        assert path in doc["paths"], path
        assert method.lower() in doc["paths"][path], (method, path)


def test_docs_api_md_names_every_operation_and_error_code():
    """docs/api.md is written by hand: every declared operation and every error code must be in it (a path under
    a queue may be written from ``…``, and ``{id}`` stands for ``{job}``)."""
    text = API_MD.read_text()
    queue = "/api/v1/queues/{name}"
    for op in OPERATIONS:
        path = op.path.replace("{job}", "{id}")
        short = "…" + path[len(queue) :] if path.startswith(queue + "/") else None
        assert f"{op.method} {path}" in text or (short and f"{op.method} {short}" in text), (op.method, op.path)
    for cls in SERVER_ERRORS:
        assert f"`{cls.code}`" in text, f"error code {cls.code} is not in docs/api.md"


async def test_operations_document_bodies_errors_and_auth(api):
    doc = await openapi(api)
    schemas = doc["components"]["schemas"]

    def resolve(ref: str) -> dict:
        return schemas[ref.rsplit("/", 1)[-1]]

    for method, path in WRITE_ROUTES:
        op = doc["paths"][path][method.lower()]
        assert "401" in op["responses"], (method, path)
        assert "503" in op["responses"], (method, path)
        if "{name}" in path:
            assert "404" in op["responses"], (method, path)
        body = op.get("requestBody")
        if body is not None:
            assert {"400", "413", "422"} <= set(op["responses"]), (method, path)
            resolve(body["content"]["application/json"]["schema"]["$ref"])
    submit = resolve(
        doc["paths"]["/api/v1/queues/{name}/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "$ref"
        ]
    )
    assert {"payload", "jobs", "priority", "delay", "run_at"} <= set(submit["properties"])
    for shape in (submit, schemas["NewJob"]):  # one of them, not both
        assert shape["not"]["required"] == ["delay", "run_at"]
    claim = resolve(
        doc["paths"]["/api/v1/queues/{name}/jobs/claim"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["$ref"]
    )
    assert claim["properties"]["count"]["maximum"] == 100
    assert claim["properties"]["block_ms"]["maximum"] == 60000
    listing = doc["paths"]["/api/v1/queues/{name}/jobs"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert {"status", "count", "cursor"} <= set(params)
    assert set(params["status"]["schema"]["enum"]) >= {
        "pending",
        "scheduled",
        "claimed",
        "completed",
        "failed",
        "cancelled",
    }
    assert "Error" in schemas and {"detail", "error"} <= set(schemas["Error"]["properties"])
    ok = doc["paths"]["/api/v1/queues/{name}/jobs/claim"]["post"]["responses"]["200"]
    assert "jobs" in resolve(ok["content"]["application/json"]["schema"]["$ref"])["properties"]
    job = schemas["Job"]["properties"]
    assert {
        "id",
        "queue",
        "status",
        "payload",
        "result",
        "error",
        "retries",
        "created_at",
        "claimed_at",
        "completed_at",
        "priority",
        "lease_id",
        "lease_expires_at",
        "worker",
    } <= set(job)


async def test_the_documented_cursor_is_what_pages_give_out(api, queue_name):
    """Clients (and the fuzz test) generate cursors from the document: it must accept every cursor a page
    gives out, and the empty one, and refuse what the server refuses."""
    doc = await openapi(api)
    params = {p["name"]: p for p in doc["paths"]["/api/v1/queues/{name}/jobs"]["get"]["parameters"]}
    pattern = params["cursor"]["schema"]["pattern"]
    await api.create(queue_name)
    await api.submit(queue_name, {"jobs": [{"payload": {"n": i}} for i in range(3)]})
    r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs", query_string={"count": 1})
    cursor = (await r.get_json())["cursor"]
    for good in (cursor, ""):
        assert re.search(pattern, good), good  # JSON Schema patterns are searched, not matched whole
    for bad in ("garbage", cursor.upper(), cursor + "0", "x" + cursor):
        assert not re.search(pattern, bad), bad
        r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs", query_string={"cursor": bad})
        assert r.status_code == 422


async def test_every_schema_reference_resolves(api):
    doc = await openapi(api)
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/(\w+)"', str(doc).replace("'", '"')))
    assert refs and refs <= set(doc["components"]["schemas"])


async def test_operation_ids_are_unique(api):
    """OpenAPI requires it, and the reference page keys each operation's state by it (two operations sharing an id
    open and close together)."""
    doc = await openapi(api)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)


# By an operation's auth: a key always, a key optional (needed only with read auth), none.
SECURITY: dict[str, Any] = {"write": [{"apiKey": []}], "read": [{}, {"apiKey": []}], "none": None}


async def test_reads_declare_the_key_optional_and_writes_required(api):
    doc = await openapi(api)
    for op in OPERATIONS:
        declared = doc["paths"][op.path][op.method.lower()].get("security")
        assert declared == SECURITY[op.auth], (op.method, op.path)
