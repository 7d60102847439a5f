"""The OpenAPI document is generated from the code and covers every route the app serves."""

from __future__ import annotations

import re

from api.routes import READ_ROUTES, WRITE_ROUTES

DOCUMENTED_ELSEWHERE = {"/api/openapi.json", "/api/docs"}


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


async def test_every_served_api_route_is_documented(api):
    """Walks the app's URL map, so a route added without the registry shows up here."""
    doc = await openapi(api)
    app = api.client.app
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if not path.startswith("/api/") or path in DOCUMENTED_ELSEWHERE:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"].get(path, {}), (method, path)


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
