"""The direct path of the hot job routes answers exactly as Quart does: every request below is sent once through
``HotPath`` and once straight to the Quart app (both behind the delivery guard, on the same real engine), and
status, headers and body must be equal (ids and times aside)."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
import pytest
import trio

from starq.server.api.delivery import DeliveryGuard
from starq.server.api.fastpath import HotPath, match
from starq.server.app import create_app
from starq.server.claims import ClaimBroker
from starq.server.settings import Settings

KEY = (b"x-api-key", b"dev-key")
RID = (b"x-request-id", b"req-1")
# Values that differ between two otherwise equal answers: generated ids, leases and times.
VOLATILE = {"id", "job_id", "lease_id", "created_at", "claimed_at", "lease_expires_at", "completed_at", "run_at"}


async def asgi(
    app,
    method: str,
    path: str,
    body: bytes | None = b"",
    headers=(KEY, RID),
    chunks=None,
    disconnect_after_body: bool = False,
    declare_length: bool = True,
) -> tuple[int, list, bytes]:
    """One request straight into an ASGI app; ``body=None`` never sends the body (a stalled client)."""
    pieces = chunks if chunks is not None else ([] if body is None else [body])
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)
    ]
    if disconnect_after_body:
        messages.append({"type": "http.disconnect"})
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()

    async def send(message: dict) -> None:
        sent.append(message)

    length = [(b"content-length", str(sum(len(p) for p in pieces)).encode())] if declare_length else []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *length, *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    if not sent:
        return 0, [], b""
    return sent[0]["status"], sent[0]["headers"], b"".join(m.get("body", b"") for m in sent[1:])


def normal(body: bytes) -> Any:
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("…" if k in VOLATILE and v else clean(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(orjson.loads(body)) if body else None


@pytest.fixture
async def paths(engine, nursery):
    """(fast, quart, app): the app as served, and the same app with the direct path left out."""

    async def make(**settings: Any):
        broker = ClaimBroker(engine)
        await nursery.start(broker.run)
        app = create_app(engine, broker, Settings(**settings))
        fast = app.asgi_app
        assert isinstance(fast._app, HotPath)
        quart = DeliveryGuard(fast._app.app, lambda: engine)
        return fast, quart, app

    return make


async def both(fast, quart, method: str, path_of, body: bytes | None = b"", alias: dict | None = None, **kw) -> tuple:
    """The same request through each path (``path_of(which)`` may name a queue per path); answers must match.
    ``alias`` maps names in the direct path's answer (its queue, its jobs) to their twins on the Quart side."""
    a = await asgi(fast, method, path_of("fast"), body, **kw)
    b = await asgi(quart, method, path_of("quart"), body, **kw)
    got = a[2]
    for mine, theirs in (alias or {}).items():
        got = got.replace(mine.encode(), theirs.encode())
    assert a[0] == b[0], (a, b)
    assert [h for h in a[1] if h[0] != b"x-request-id"] == [h for h in b[1] if h[0] != b"x-request-id"]
    assert normal(got) == normal(b[2]), (a[2], b[2])
    return a


def test_match_takes_exactly_the_hot_routes():
    q = "/api/v1/queues/q"
    cases = {
        ("POST", q + "/jobs"): ("POST", "/api/v1/queues/{name}/jobs", "q", None),
        ("POST", q + "/jobs/claim"): ("POST", "/api/v1/queues/{name}/jobs/claim", "q", None),
        ("POST", q + "/jobs/ack"): ("POST", "/api/v1/queues/{name}/jobs/ack", "q", None),
        ("PUT", q + "/jobs/j1/complete"): ("PUT", "/api/v1/queues/{name}/jobs/{job}/complete", "q", "j1"),
        ("PUT", q + "/jobs/j1/fail"): ("PUT", "/api/v1/queues/{name}/jobs/{job}/fail", "q", "j1"),
        # Literal segments are ordinary job ids in a job's place, as werkzeug routes them.
        ("PUT", q + "/jobs/claim/complete"): ("PUT", "/api/v1/queues/{name}/jobs/{job}/complete", "q", "claim"),
        ("POST", "/api/v1/queues/jobs/jobs"): ("POST", "/api/v1/queues/{name}/jobs", "jobs", None),
        # Names Quart would route but the handler refuses still come here, so the answer is the handler's.
        ("POST", "/api/v1/queues/BAD{x}/jobs"): ("POST", "/api/v1/queues/{name}/jobs", "BAD{x}", None),
    }
    for (method, path), (m, p, name, job) in cases.items():
        hot, got_name, got_job = match(method, path)
        assert (hot.method, hot.path, got_name, got_job) == (m, p, name, job)
    for method, path in [
        ("GET", q + "/jobs"),
        ("HEAD", q + "/jobs"),
        ("OPTIONS", q + "/jobs"),
        ("PUT", q + "/jobs"),
        ("POST", q + "/jobs/"),
        ("POST", "/api/v1/queues//jobs"),
        ("POST", q + "//jobs"),
        ("PUT", q + "/jobs//complete"),
        ("POST", q + "/jobs/j1/complete"),
        ("PUT", q + "/jobs/j1/extend"),
        ("POST", q + "/jobs/j1/retry"),
        ("DELETE", q + "/jobs/j1"),
        ("POST", q + "/jobs/claim/x"),
        ("POST", q),
        ("POST", "/api/v1/queues"),
        ("POST", "/api/v2/queues/q/jobs"),
        ("POST", q + "/pause"),
    ]:
        assert match(method, path) is None, (method, path)


async def test_a_worker_loop_answers_the_same_both_ways(paths, engine, queue_name):
    fast, quart, app = await paths()
    queues = {"fast": queue_name + "-f", "quart": queue_name + "-q"}
    for q in queues.values():
        r = await app.test_client().post(
            "/api/v1/queues", json={"name": q, "max_retries": 1, "retry_delay": 0}, headers={"X-API-Key": "dev-key"}
        )
        assert r.status_code == 201

    def at(suffix: str):
        return lambda which: f"/api/v1/queues/{queues[which]}{suffix}"

    alias = {queues["fast"]: queues["quart"]}

    status, headers, body = await both(
        fast, quart, "POST", at("/jobs"), orjson.dumps({"payload": {"n": 1}}), alias=alias
    )
    assert status == 201 and (b"x-request-id", b"req-1") in headers
    await both(
        fast,
        quart,
        "POST",
        at("/jobs"),
        orjson.dumps({"jobs": [{"payload": {"n": i}, "priority": i % 3} for i in range(4)]}),
        alias=alias,
    )
    await both(fast, quart, "POST", at("/jobs"), orjson.dumps({"payload": {"n": 9}, "delay": 3600}), alias=alias)
    await both(
        fast,
        quart,
        "POST",
        at("/jobs"),
        orjson.dumps({"payload": {"n": 9}, "run_at": "2999-01-01T00:00:00Z"}),
        alias=alias,
    )

    # Claims: the same jobs in the same order; their leases come back to complete and fail them.
    claimed = {}
    for which in ("fast", "quart"):
        status, _, body = await asgi(
            fast if which == "fast" else quart,
            "POST",
            at("/jobs/claim")(which),
            orjson.dumps({"count": 3, "worker": "w1"}),
        )
        claimed[which] = orjson.loads(body)["jobs"]
    assert len(claimed["fast"]) == 3
    alias.update({a["id"]: b["id"] for a, b in zip(claimed["fast"], claimed["quart"])})
    fast_claims = orjson.dumps(claimed["fast"]).replace(queues["fast"].encode(), queues["quart"].encode())
    assert normal(fast_claims) == normal(orjson.dumps(claimed["quart"]))

    def job_path(i: int, action: str):
        return lambda which: f"/api/v1/queues/{queues[which]}/jobs/{claimed[which][i]['id']}/{action}"

    stale = orjson.dumps({"lease_id": "not-the-lease", "result": 1})
    await both(fast, quart, "PUT", job_path(0, "complete"), stale, alias=alias)  # 409
    for which, app_ in (("fast", fast), ("quart", quart)):
        lease = claimed[which][0]["lease_id"]
        a = await asgi(app_, "PUT", job_path(0, "complete")(which), orjson.dumps({"lease_id": lease, "result": [1]}))
        assert a[0] == 200 and orjson.loads(a[2])["status"] == "completed"
        lease = claimed[which][1]["lease_id"]
        a = await asgi(app_, "PUT", job_path(1, "fail")(which), orjson.dumps({"lease_id": lease, "error": "x"}))
        assert a[0] == 200 and orjson.loads(a[2]) == {
            "status": "pending",
            "job_id": claimed[which][1]["id"],
            "retries": 1,
        }
    await both(fast, quart, "PUT", job_path(0, "complete"), b"{}", alias=alias)  # already completed: 409
    await both(fast, quart, "PUT", job_path(1, "fail"), orjson.dumps({"error": 5}), alias=alias)  # 422

    # A batch ack with one good, one stale and one unknown outcome.
    bodies = {
        w: orjson.dumps(
            {
                "complete": [
                    {"id": claimed[w][2]["id"], "lease_id": claimed[w][2]["lease_id"], "result": {"ok": 1}},
                    {"id": "no-such-job"},
                ],
                "fail": [{"id": claimed[w][0]["id"], "lease_id": "stale", "error": "late"}],
            }
        )
        for w in queues
    }
    answers = [await asgi(p, "POST", at("/jobs/ack")(w), bodies[w]) for w, p in (("fast", fast), ("quart", quart))]
    assert answers[0][0] == answers[1][0] == 200
    fast_ack = answers[0][2]
    for mine, theirs in alias.items():
        fast_ack = fast_ack.replace(mine.encode(), theirs.encode())
    assert normal(fast_ack) == normal(answers[1][2])
    assert orjson.loads(answers[0][2])["completed"] == 1 and orjson.loads(answers[0][2])["errors"] == 2
    infos = [await engine.queue_info(q) for q in queues.values()]
    assert infos[0].counts == infos[1].counts


@pytest.mark.parametrize(
    "method,suffix,body,headers",
    [
        ("POST", "/jobs", b"{", (KEY, RID)),  # not JSON
        ("POST", "/jobs", b"[]", (KEY, RID)),  # not an object
        ("POST", "/jobs", b"", (KEY, RID)),  # neither payload nor jobs
        ("POST", "/jobs", b'{"payload": {}, "priority": 10}', (KEY, RID)),
        ("POST", "/jobs", b'{"jobs": []}', (KEY, RID)),
        ("POST", "/jobs", b'{"jobs": [{"priority": 1}]}', (KEY, RID)),
        ("POST", "/jobs", b'{"payload": {}, "run_at": "tomorrow"}', (KEY, RID)),
        ("POST", "/jobs", b'{"payload": {"a": 1}}', (RID,)),  # no key
        ("POST", "/jobs", b'{"payload": {"a": 1}}', ((b"x-api-key", b"wrong"), RID)),
        ("POST", "/jobs", b'{"payload": {"a": 1}}', ((b"x-api-key", b"dev-key "), RID)),
        ("POST", "/jobs", b'{"payload": {"a": 1}}', (KEY, (b"x-request-id", b"a b\x7f"))),  # a new id
        ("POST", "/jobs", b'{"payload": {"a": 1}}', (KEY,)),  # a new id
        ("POST", "/jobs", b'{"payload": {"a": 1}}', (KEY, RID, (b"x-big", b"x" * 17000))),  # 431
        ("POST", "/jobs/claim", b'{"count": 0}', (KEY, RID)),
        ("POST", "/jobs/claim", b'{"count": 3.0, "block_ms": true}', (KEY, RID)),
        ("POST", "/jobs/claim", b'{"count": 2}', (KEY, RID)),  # unknown queue: 404
        ("POST", "/jobs/ack", b'{"complete": [{"id": "x/y"}]}', (KEY, RID)),
        ("POST", "/jobs/ack", b'{"complete": [{}]}', (KEY, RID)),
        ("POST", "/jobs/ack", b'{"complete": [{"id": "a"}]}', (KEY, RID)),  # unknown queue: 404
        ("PUT", "/jobs/j1/complete", b'{"lease_id": 3}', (KEY, RID)),
        ("PUT", "/jobs/j1/complete", b"{}", (KEY, RID)),  # unknown queue: 404
        ("PUT", "/jobs/bad%id/fail", b"{}", (KEY, RID)),  # impossible job id: 404
        ("PUT", "/jobs/j1/fail", b'{"retry": "no"}', (KEY, RID)),
    ],
)
async def test_refusals_are_the_same_both_ways(paths, queue_name, method, suffix, body, headers):
    fast, quart, _ = await paths()
    status, got_headers, answer = await both(
        fast, quart, method, lambda which: f"/api/v1/queues/{queue_name}{suffix}", body, headers=headers
    )
    assert status >= 400 and set(orjson.loads(answer)) == {"detail", "error"}
    rid = dict(got_headers)[b"x-request-id"]
    assert rid == b"req-1" if RID in headers else re.fullmatch(rb"[0-9a-f]{32}", rid)


async def test_delay_with_run_at_is_refused_both_ways(paths, queue_name):
    fast, quart, _ = await paths()
    status, _, _ = await asgi(quart, "POST", "/api/v1/queues", orjson.dumps({"name": queue_name}))
    assert status == 201
    at = "2030-01-01T00:00:00Z"
    for body, prefix in (
        ({"payload": {}, "delay": 1, "run_at": at}, ""),
        ({"jobs": [{"payload": {}}, {"payload": {}, "delay": 1, "run_at": at}]}, "jobs[1]."),
    ):
        status, _, answer = await both(
            fast, quart, "POST", lambda which: f"/api/v1/queues/{queue_name}/jobs", orjson.dumps(body)
        )
        error = orjson.loads(answer)
        assert (status, error["error"]) == (422, "validation_error"), answer
        assert f"{prefix}delay" in error["detail"] and f"{prefix}run_at" in error["detail"], answer


async def test_impossible_queue_names_are_not_found_both_ways(paths):
    fast, quart, _ = await paths()
    for name in ("BAD", "a{b}", "x" * 200, "-a"):
        path = f"/api/v1/queues/{name}/jobs/claim"
        status, _, _ = await both(fast, quart, "POST", lambda which, path=path: path, b"{}")
        assert status == 404


async def test_body_limits_both_ways(paths, queue_name):
    fast, quart, _ = await paths(max_body_bytes=100, max_payload_bytes=50)

    def path(which: str) -> str:
        return f"/api/v1/queues/{queue_name}/jobs"

    big = orjson.dumps({"payload": {"x": "y" * 200}})
    status, _, _ = await both(fast, quart, "POST", path, big)  # declared too large
    assert status == 413
    # Sent in pieces with no length declared up front: the limit applies to what arrives.
    status, _, _ = await both(fast, quart, "POST", path, None, chunks=[big[:60], big[60:]], declare_length=False)
    assert status == 413
    status, _, answer = await both(fast, quart, "POST", path, orjson.dumps({"payload": {"x": "y" * 60}}))
    assert status == 413 and b"payload" in answer  # within the body limit, over the payload limit
    status, _, _ = await both(fast, quart, "POST", path, None, chunks=[b'{"payload":', b' {"a": 1}', b"}"])
    assert status == 404  # whole and valid, on a queue that does not exist


async def test_a_stalled_body_gets_408_both_ways(paths, queue_name):
    fast, quart, _ = await paths(body_timeout=0.2)
    status, _, answer = await both(fast, quart, "POST", lambda w: f"/api/v1/queues/{queue_name}/jobs", None)
    assert status == 408 and orjson.loads(answer)["error"] == "request_timeout"


async def test_a_hang_up_during_the_body_gets_no_answer(paths, queue_name):
    fast, _, _ = await paths()
    status, _, _ = await asgi(fast, "POST", f"/api/v1/queues/{queue_name}/jobs", None, disconnect_after_body=True)
    assert status == 0


async def test_a_hang_up_cancels_a_parked_claim(paths, api, queue_name):
    fast, _, app = await paths()
    await api.create(queue_name)
    broker = app.extensions["starq"].broker
    with trio.fail_after(5):
        status, _, _ = await asgi(
            fast, "POST", f"/api/v1/queues/{queue_name}/jobs/claim", b'{"block_ms": 30000}', disconnect_after_body=True
        )
    assert status == 0 and broker.waiting == 0


async def test_metrics_and_access_log_see_the_direct_path(paths, queue_name, caplog):
    fast, quart, app = await paths(access_log=True)
    metrics = app.extensions["starq.metrics"]
    caplog.set_level(logging.INFO, logger="starq.access")
    for p in (fast, quart):
        await asgi(p, "POST", f"/api/v1/queues/{queue_name}/jobs/claim", b"{}")
    labels = {"method": "POST", "route": "/api/v1/queues/<name>/jobs/claim", "status": "404"}
    assert metrics.registry.get_sample_value("starq_http_requests_total", labels) == 2
    assert metrics.registry.get_sample_value("starq_http_request_duration_seconds_count", labels) == 2
    lines = [r for r in caplog.records if r.name == "starq.access"]
    assert len(lines) == 2
    assert [(r.method, r.path, r.status, r.remote) for r in lines] == [
        ("POST", f"/api/v1/queues/{queue_name}/jobs/claim", 404, "127.0.0.1")
    ] * 2
