"""Every bad-input rule of the API: status, a JSON ``{"detail", "error"}`` body, and the queue unchanged."""

from __future__ import annotations

import json
import random

import coredis
import orjson
import pytest

from api.helpers import KEY, assert_error
from api.routes import QUEUE_ROUTES, READ_ROUTES, WRITE_ROUTES
from starq.server.api.service import deeper_than
from starq.server.embedded import start_store
from starq.server.engine import keys
from starq.server.engine.engine import open_engine
from starq.server.engine.models import new_job_id
from starq.worker_kit.protocol import JOB_STATUSES, MAX_JSON_DEPTH

WRONG = {"X-API-Key": "not-the-key"}


def fill(path: str, queue: str, job: str = "no-such-job") -> str:
    return path.replace("{name}", queue).replace("{job}", job)


async def request(client, method, path, **kw):
    return await client.open(path, method=method, **kw)


@pytest.fixture
async def seeded(api, queue_name):
    """A queue with a pending, a claimed and a completed job, so any unintended change shows."""
    await api.create(queue_name, max_retries=2)
    jobs = (await api.submit(queue_name, {"jobs": [{"payload": {"i": i}} for i in range(3)]}))["jobs"]
    a, b = await api.claim(queue_name, 2)
    await api.client.put(f"/api/v1/queues/{queue_name}/jobs/{b['id']}/complete", json={}, headers=KEY)
    before = await api.snapshot(queue_name)
    return queue_name, jobs, a, before


# -- 401 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", WRITE_ROUTES)
async def test_writes_need_the_key(api, seeded, method, path):
    queue, jobs, claimed, before = seeded
    for headers in ({}, WRONG, {"X-API-Key": ""}, {"X-API-Key": "dev-key "}, {"Authorization": "dev-key"}):
        r = await request(
            api.client, method, fill(path, queue, claimed["id"]), json={"name": queue + "x"}, headers=headers
        )
        await assert_error(r, 401, "unauthorized")
    assert await api.snapshot(queue) == before
    assert (await api.client.get(f"/api/v1/queues/{queue}x")).status_code == 404


async def test_configured_keys_replace_dev_key_and_all_rotate(make_api, queue_name):
    api = await make_api(api_keys=("k-old", "k-new"))
    r = await api.client.post("/api/v1/queues", json={"name": queue_name}, headers=KEY)
    await assert_error(r, 401, "unauthorized")
    for key in ("k-old", "k-new"):
        r = await api.client.post("/api/v1/queues", json={"name": f"{queue_name}-{key}"}, headers={"X-API-Key": key})
        assert r.status_code == 201


@pytest.mark.parametrize("method,path", READ_ROUTES)
async def test_reads_are_open_by_default(api, seeded, method, path):
    queue, jobs, claimed, before = seeded
    r = await request(api.client, method, fill(path, queue, claimed["id"]))
    assert r.status_code == 200


@pytest.mark.parametrize("method,path", [*READ_ROUTES, ("GET", "/api/v1/queues/{name}/stats")])
async def test_read_auth_makes_gets_need_the_key(make_api, queue_name, method, path):
    api = await make_api(read_auth=True)
    await api.create(queue_name)
    job = (await api.submit(queue_name, {"payload": {"a": 1}}))["jobs"][0]
    for headers in ({}, WRONG):
        await assert_error(
            await request(api.client, method, fill(path, queue_name, job["id"]), headers=headers), 401, "unauthorized"
        )
    r = await request(api.client, method, fill(path, queue_name, job["id"]), headers=KEY)
    assert r.status_code == 200


async def test_read_auth_leaves_health_open(make_api):
    api = await make_api(read_auth=True)
    r = await api.client.get("/api/health")
    assert r.status_code == 200 and (await r.get_json())["status"] == "ok"


@pytest.mark.parametrize("method,path", QUEUE_ROUTES)
async def test_401_does_not_reveal_whether_a_queue_exists(make_api, queue_name, method, path):
    api = await make_api(read_auth=True)
    await api.create(queue_name)
    existing = await request(api.client, method, fill(path, queue_name), json={}, headers=WRONG)
    missing = await request(api.client, method, fill(path, queue_name + "-none"), json={}, headers=WRONG)
    assert existing.status_code == missing.status_code == 401
    assert await existing.get_json() == await missing.get_json()


# -- 404 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", QUEUE_ROUTES)
async def test_unknown_queue_is_404(api, queue_name, method, path):
    # A body each route accepts (the others' fields are ignored), so the queue is what is missing.
    body = {"payload": {"a": 1}, "action": "cancel", "ids": ["0000-no-such-job"]}
    r = await request(api.client, method, fill(path, queue_name), json=body, headers=KEY)
    await assert_error(r, 404, "queue_not_found")
    assert (await api.client.get(f"/api/v1/queues/{queue_name}")).status_code == 404


@pytest.mark.parametrize("name", ["UPPER", "-dash-first", "has space", "br{ace}", "x" * 129])
async def test_impossible_queue_names_are_404(api, name):
    await assert_error(await api.client.get(f"/api/v1/queues/{name}"), 404)


@pytest.mark.parametrize("method,path", [r for r in QUEUE_ROUTES if "{job}" in r[1]])
async def test_unknown_job_is_404(api, seeded, method, path):
    queue, jobs, claimed, before = seeded
    r = await request(api.client, method, fill(path, queue, "0000-no-such-job"), json={}, headers=KEY)
    await assert_error(r, 404, "job_not_found")
    assert await api.snapshot(queue) == before


async def test_unknown_route_and_method_are_json(api, seeded):
    queue = seeded[0]
    await assert_error(await api.client.get("/api/v1/nothing-here"), 404)
    await assert_error(await request(api.client, "PUT", f"/api/v1/queues/{queue}/jobs", json={}, headers=KEY), 405)


# -- 400 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path", [r for r in WRITE_ROUTES if r[0] != "DELETE" and not r[1].endswith(("/pause", "/resume", "/retry"))]
)
async def test_malformed_json_is_400(api, seeded, method, path):
    queue, jobs, claimed, before = seeded
    for raw in (b"{not json", b'{"payload": ', b"\xff\xfe", b"[1, 2,]", b"{'single': 'quotes'}"):
        r = await request(
            api.client,
            method,
            fill(path, queue, claimed["id"]),
            data=raw,
            headers={**KEY, "Content-Type": "application/json"},
        )
        await assert_error(r, 400, "bad_request")
    assert await api.snapshot(queue) == before


# -- 422 -------------------------------------------------------------------------------------------------

CREATE_422 = [
    ({}, "name"),
    ({"name": "Bad Name"}, "name"),
    ({"name": "-x"}, "name"),
    ({"name": "x" * 129}, "name"),
    ({"name": 5}, "name"),
    ({"name": "ok", "max_retries": "3"}, "max_retries"),
    ({"name": "ok", "max_retries": -1}, "max_retries"),
    ({"name": "ok", "max_retries": 1.5}, "max_retries"),
    ({"name": "ok", "claim_timeout": 0}, "claim_timeout"),
    ({"name": "ok", "claim_timeout": True}, "claim_timeout"),
    ({"name": "ok", "dedupe": "yes"}, "dedupe"),
    ({"name": "ok", "retry_delay": -1}, "retry_delay"),
    ({"name": "ok", "retry_delay_max": "1"}, "retry_delay_max"),
    ({"name": "ok", "retention": 0}, "retention"),
    ({"name": "ok", "description": 7}, "description"),
]


@pytest.mark.parametrize("body,field", CREATE_422)
async def test_create_queue_schema_violations(api, queue_name, body, field):
    body = {**body, "name": body["name"].replace("ok", queue_name)} if body.get("name") == "ok" else body
    r = await api.client.post("/api/v1/queues", json=body, headers=KEY)
    await assert_error(r, 422, "validation_error", field)
    if body.get("name") == queue_name:
        assert (await api.client.get(f"/api/v1/queues/{queue_name}")).status_code == 404


SUBMIT_422 = [
    ({}, "payload"),
    ({"payload": [1, 2]}, "payload"),
    ({"payload": "text"}, "payload"),
    ({"payload": 5}, "payload"),
    ({"payload": {}, "priority": 10}, "priority"),
    ({"payload": {}, "priority": -1}, "priority"),
    ({"payload": {}, "priority": "high"}, "priority"),
    ({"payload": {}, "delay": -1}, "delay"),
    ({"payload": {}, "delay": "soon"}, "delay"),
    ({"payload": {}, "run_at": "tomorrow"}, "run_at"),
    ({"payload": {}, "run_at": "2030-01-01T00:00:00"}, "run_at"),
    ({"jobs": {"payload": {}}}, "jobs"),
    ({"jobs": []}, "jobs"),
    ({"jobs": [{"payload": {}}, {"nopayload": 1}]}, "jobs[1]"),
    ({"jobs": [{"payload": {}}, {"payload": {}}, {"payload": {}, "priority": 11}]}, "jobs[2].priority"),
    ({"jobs": [{"payload": {}}, {"payload": []}]}, "jobs[1].payload"),
    ({"jobs": [{"payload": {}}, {"payload": {}, "run_at": "no"}]}, "jobs[1].run_at"),
    ({"jobs": [{"payload": {}}, 7]}, "jobs[1]"),
    # true is no number in JSON, though bool is an int in Python.
    ({"payload": {}, "priority": True}, "priority"),
    ({"jobs": [{"payload": {}, "delay": False}]}, "jobs[0].delay"),
    ({"payload": {}, "key": 5}, "key"),
    ({"payload": {}, "tags": "a"}, "tags"),
]


@pytest.mark.parametrize("body,field", SUBMIT_422)
async def test_submit_schema_violations(api, seeded, body, field):
    queue, jobs, claimed, before = seeded
    r = await api.client.post(f"/api/v1/queues/{queue}/jobs", json=body, headers=KEY)
    await assert_error(r, 422, "validation_error", field)
    assert await api.snapshot(queue) == before


@pytest.mark.parametrize(
    "body,prefix",
    [
        ({"payload": {}, "delay": 30, "run_at": "2030-01-01T00:00:00Z"}, ""),
        ({"payload": {}, "delay": 0, "run_at": "2030-01-01T00:00:00Z"}, ""),
        (
            {
                "jobs": [
                    {"payload": {}},
                    {"payload": {}, "delay": 5},
                    {"payload": {}, "run_at": "2030-01-01T00:00:00Z"},
                    {"payload": {}, "delay": 5, "run_at": "2030-01-01T00:00:00Z"},
                ]
            },
            "jobs[3].",
        ),
    ],
)
async def test_delay_and_run_at_together_are_422(api, seeded, body, prefix):
    queue, jobs, claimed, before = seeded
    r = await api.client.post(f"/api/v1/queues/{queue}/jobs", json=body, headers=KEY)
    detail = (await assert_error(r, 422, "validation_error"))["detail"]
    assert f"{prefix}delay" in detail and f"{prefix}run_at" in detail, detail
    assert await api.snapshot(queue) == before


async def test_request_body_must_be_an_object(api, seeded):
    queue, jobs, claimed, before = seeded
    bodies: list[object] = [[{"payload": {}}], "x", 5, None]
    for body in bodies:
        r = await api.client.post(f"/api/v1/queues/{queue}/jobs", json=body, headers=KEY)
        if body is None:
            # JSON null: an empty-ish body that names no payload.
            await assert_error(r, 422, "validation_error")
        else:
            await assert_error(r, 422, "validation_error", "body")
    assert await api.snapshot(queue) == before


JOB_422 = [
    ("POST", "/jobs/claim", {"count": 0}, "count"),
    ("POST", "/jobs/claim", {"count": 101}, "count"),
    ("POST", "/jobs/claim", {"count": "5"}, "count"),
    ("POST", "/jobs/claim", {"block_ms": -1}, "block_ms"),
    ("POST", "/jobs/claim", {"block_ms": 60001}, "block_ms"),
    ("POST", "/jobs/claim", {"block_ms": 1.5}, "block_ms"),
    ("POST", "/jobs/claim", {"worker": 5}, "worker"),
    ("POST", "/jobs/claim", {"worker": "w" * 129}, "worker"),
    ("PUT", "/jobs/{job}/complete", {"lease_id": 5}, "lease_id"),
    ("PUT", "/jobs/{job}/fail", {"retry": "no"}, "retry"),
    ("PUT", "/jobs/{job}/fail", {"error": {"x": 1}}, "error"),
    ("PUT", "/jobs/{job}/extend", {"seconds": 0}, "seconds"),
    ("PUT", "/jobs/{job}/extend", {"seconds": "60"}, "seconds"),
    ("POST", "/jobs/ack", {"complete": {}}, "complete"),
    ("POST", "/jobs/ack", {"complete": [{"result": {}}]}, "complete[0].id"),
    ("POST", "/jobs/ack", {"fail": [{"id": "x", "retry": 1}]}, "fail[0].retry"),
]


@pytest.mark.parametrize("method,suffix,body,field", JOB_422)
async def test_job_endpoint_schema_violations(api, seeded, method, suffix, body, field):
    queue, jobs, claimed, before = seeded
    path = f"/api/v1/queues/{queue}" + suffix.replace("{job}", claimed["id"])
    r = await request(api.client, method, path, json=body, headers=KEY)
    await assert_error(r, 422, "validation_error", field)
    assert await api.snapshot(queue) == before


@pytest.mark.parametrize(
    "body,field",
    [
        ({"max_retries": "x"}, "max_retries"),
        ({"claim_timeout": 0}, "claim_timeout"),
        ({"dedupe": 1}, "dedupe"),
        ({"retention": -5}, "retention"),
    ],
)
async def test_patch_schema_violations(api, seeded, body, field):
    queue, jobs, claimed, before = seeded
    r = await api.client.patch(f"/api/v1/queues/{queue}", json=body, headers=KEY)
    await assert_error(r, 422, "validation_error", field)
    assert await api.snapshot(queue) == before


@pytest.mark.parametrize(
    "query,field",
    [({"status": "done"}, "status"), ({"count": 0}, "count"), ({"count": 501}, "count"), ({"count": "many"}, "count")],
)
async def test_list_query_violations(api, seeded, query, field):
    queue = seeded[0]
    r = await api.client.get(f"/api/v1/queues/{queue}/jobs", query_string=query)
    await assert_error(r, 422, "validation_error", field)


async def test_an_unknown_status_lists_the_real_ones(api, seeded):
    queue = seeded[0]
    r = await api.client.get(f"/api/v1/queues/{queue}/jobs", query_string={"status": "bogus"})
    body = await assert_error(r, 422, "validation_error", "status")
    assert body["detail"] == "status must be one of: " + ", ".join(JOB_STATUSES)
    # An empty status is no filter (as in the OpenAPI document's enum); it is not an option to list.
    r = await api.client.get(f"/api/v1/queues/{queue}/jobs", query_string={"status": ""})
    assert r.status_code == 200 and len((await r.get_json())["jobs"]) == 3


# A cursor is the id of the last job of the page before (a UUIDv7 as ``new_job_id`` makes it); nothing else can be.
BAD_CURSORS = [
    "garbage",
    " ",
    "0",
    "1700000000000-0",  # a stream entry id
    "01a241db-9d9a-7048-9cc5-c971a63c2d9",  # one digit short
    "01a241db-9d9a-7048-9cc5-c971a63c2d9c0",  # one digit long
    "01A241DB-9D9A-7048-9CC5-C971A63C2D9C",  # upper case: never made, and it would sort apart
    "01a241db-9d9a-4048-9cc5-c971a63c2d9c",  # version 4
    "01a241db-9d9a-7048-1cc5-c971a63c2d9c",  # not the RFC 9562 variant
    "01a241db9d9a70489cc5c971a63c2d9c",  # no dashes
    "{01a241db-9d9a-7048-9cc5-c971a63c2d9c}",
    "01a241db-9d9a-7048-9cc5-c971a63c2d9c\n",
    "x" * 65,
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
async def test_a_cursor_that_no_page_gave_out_is_422(api, seeded, cursor):
    queue = seeded[0]
    r = await api.client.get(f"/api/v1/queues/{queue}/jobs", query_string={"cursor": cursor})
    await assert_error(r, 422, "validation_error", "cursor")


async def test_cursors_a_page_can_give_out_are_accepted(api, seeded):
    queue, jobs = seeded[0], seeded[1]
    newest_first = [j["id"] for j in reversed(jobs)]
    for query, expected in (
        ({}, newest_first),
        ({"cursor": ""}, newest_first),  # empty: from the newest
        ({"cursor": newest_first[0]}, newest_first[1:]),
        ({"cursor": new_job_id()}, newest_first),  # an id made now: every job is older
    ):
        r = await api.client.get(f"/api/v1/queues/{queue}/jobs", query_string=query)
        assert r.status_code == 200, await r.get_data()
        assert [j["id"] for j in (await r.get_json())["jobs"]] == expected, query


# -- 413 -------------------------------------------------------------------------------------------------


async def test_body_over_the_limit_is_413(api, seeded):
    queue, jobs, claimed, before = seeded
    # 10 MiB is the documented default; a body just over it is refused, whatever it holds.
    big = b'{"jobs": [' + b",".join([b'{"payload": {"s": "' + b"x" * 1000 + b'"}}'] * 10_500) + b"]}"
    assert len(big) > 10 * 1024 * 1024
    r = await api.client.post(
        f"/api/v1/queues/{queue}/jobs", data=big, headers={**KEY, "Content-Type": "application/json"}
    )
    await assert_error(r, 413, "too_large")
    assert await api.snapshot(queue) == before


async def test_configured_body_limit(make_api, queue_name):
    api = await make_api(max_body_bytes=1000)
    await api.create(queue_name)
    before = await api.snapshot(queue_name)
    r = await api.client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {"s": "x" * 2000}}, headers=KEY)
    await assert_error(r, 413, "too_large", "1000")
    assert await api.snapshot(queue_name) == before


async def test_payload_over_1_mib_is_413(api, seeded):
    queue, jobs, claimed, before = seeded
    r = await api.client.post(f"/api/v1/queues/{queue}/jobs", json={"payload": {"s": "x" * (1024 * 1024)}}, headers=KEY)
    await assert_error(r, 413, "too_large", "payload")
    batch = {"jobs": [{"payload": {"ok": 1}}, {"payload": {"s": "x" * (1024 * 1024)}}]}
    r = await api.client.post(f"/api/v1/queues/{queue}/jobs", json=batch, headers=KEY)
    await assert_error(r, 413, "too_large", "jobs[1].payload")
    assert await api.snapshot(queue) == before


async def test_payload_just_under_1_mib_is_accepted(api, queue_name):
    await api.create(queue_name)
    await api.submit(queue_name, {"payload": {"s": "x" * (1024 * 1024 - 20)}})


async def test_result_over_1_mib_is_413_and_job_stays_claimed(api, seeded):
    queue, jobs, claimed, before = seeded
    r = await api.client.put(
        f"/api/v1/queues/{queue}/jobs/{claimed['id']}/complete",
        json={"result": {"s": "x" * (1024 * 1024)}},
        headers=KEY,
    )
    await assert_error(r, 413, "too_large", "result")
    assert await api.snapshot(queue) == before


async def test_more_than_1000_jobs_is_413(api, seeded):
    queue, jobs, claimed, before = seeded
    r = await api.client.post(f"/api/v1/queues/{queue}/jobs", json={"jobs": [{"payload": {}}] * 1001}, headers=KEY)
    await assert_error(r, 413, "too_large", "1000")
    assert await api.snapshot(queue) == before
    r = await api.client.post(f"/api/v1/queues/{queue}/jobs/ack", json={"fail": [{"id": "x"}] * 1001}, headers=KEY)
    await assert_error(r, 413, "too_large", "1000")
    assert await api.snapshot(queue) == before


async def test_exactly_1000_jobs_is_accepted(api, queue_name):
    await api.create(queue_name)
    body = await api.submit(queue_name, {"jobs": [{"payload": {"i": i}} for i in range(1000)]})
    assert body["submitted"] == 1000


# -- 409 too_many_queues -----------------------------------------------------------------------------------


async def test_creating_past_the_queue_limit_is_refused(make_api, redis_url, queue_name):
    """STARQ_MAX_QUEUES: a create beyond the limit gets 409 too_many_queues and changes nothing; deleting a queue
    makes room again."""
    async with coredis.Redis.from_url(redis_url, decode_responses=True) as raw:
        existing = await raw.scard(keys.REGISTRY)
    api = await make_api(max_queues=existing + 1)
    await api.create(queue_name)
    second = await api.client.post("/api/v1/queues", json={"name": queue_name + "-2"}, headers=KEY)
    await assert_error(second, 409, "too_many_queues", "STARQ_MAX_QUEUES")
    assert (await api.client.get(f"/api/v1/queues/{queue_name}-2")).status_code == 404

    assert (await api.client.delete(f"/api/v1/queues/{queue_name}", headers=KEY)).status_code == 200
    await api.create(queue_name + "-2")
    await api.engine.delete_queue(queue_name + "-2")


# -- 503 -------------------------------------------------------------------------------------------------


@pytest.fixture
async def api_on_dead_store(tmp_path, nursery, queue_name):
    """An app whose store was killed after the queue was made."""
    from starq.server.app import create_app
    from starq.server.hub import Hub
    from starq.server.settings import Settings

    store = start_store(tmp_path, unix_socket=False, appendonly=False)
    try:
        async with open_engine(store.url) as engine:
            await engine.create_queue(queue_name, {})
            app = create_app(engine, Hub(engine), Settings())
            store.kill()
            yield app.test_client()
    finally:
        store.kill()


async def test_store_down_is_503_on_every_route(api_on_dead_store, queue_name):
    for method, path in WRITE_ROUTES + READ_ROUTES:
        r = await request(
            api_on_dead_store,
            method,
            fill(path, queue_name),
            json={"name": queue_name + "-n", "payload": {"a": 1}, "action": "retry", "ids": ["0000-no-such-job"]},
            headers=KEY,
        )
        await assert_error(r, 503, "store_unavailable")


async def test_health_reports_store_down(api_on_dead_store):
    r = await api_on_dead_store.get("/api/health")
    assert r.status_code == 503 and r.content_type.startswith("application/json")
    body = await r.get_json()
    assert body["status"] == "error" and body["detail"]


@pytest.mark.parametrize("depth", [65, 300, 1000, 5000])
async def test_a_body_nested_past_the_limit_gets_422_naming_it(api, queue_name, depth):
    await api.create(queue_name)
    payload = b'{"a":' * (depth - 1) + b"1" + b"}" * (depth - 1)
    body = b'{"payload":' + payload + b"}"
    headers = {**KEY, "Content-Type": "application/json"}
    r = await api.client.post(f"/api/v1/queues/{queue_name}/jobs", data=body, headers=headers)
    await assert_error(r, 422, "validation_error", f"more than {MAX_JSON_DEPTH} levels")


async def test_a_body_nested_to_the_limit_is_accepted(api, queue_name):
    await api.create(queue_name)
    payload = b'{"a":' * (MAX_JSON_DEPTH - 2) + b"[]" + b"}" * (MAX_JSON_DEPTH - 2)
    r = await api.client.post(f"/api/v1/queues/{queue_name}/jobs", data=b'{"payload":' + payload + b"}",
                              headers={**KEY, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 201, await r.get_data()


def _nesting(value) -> int:
    """How deep arrays and objects nest in a decoded JSON value (the reference for ``deeper_than``)."""
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    return 0


def _random_value(rng: random.Random, depth: int):
    """A JSON value up to ``depth`` deep, with strings full of brackets, quotes and backslashes."""
    kind = rng.choice(("list", "dict", "str", "num")) if depth else rng.choice(("str", "num"))
    if kind == "list":
        return [_random_value(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {rng.choice(["k", "[", "}{", '"', "\\"]) + str(i): _random_value(rng, depth - 1)
                for i in range(rng.randint(0, 3))}  # fmt: skip
    if kind == "str":
        return "".join(rng.choice('[]{}"\\ax') for _ in range(rng.randint(0, 8)))
    return rng.randint(-5, 5)


def test_deeper_than_agrees_with_the_decoded_values_nesting():
    """The depth check reads the text (strings with brackets, escaped quotes and backslashes do not count)."""
    rng = random.Random(13)
    for _ in range(3000):
        value = _random_value(rng, rng.randint(0, 9))
        for text in (orjson.dumps(value), json.dumps(value, indent=1).encode()):
            depth = _nesting(value)
            for limit in (max(depth - 1, 0), depth, depth + 1):
                assert deeper_than(text, limit) == (depth > limit), (text, limit)
