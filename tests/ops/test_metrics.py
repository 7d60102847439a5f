"""``GET /metrics``: every family exists, and per-queue counters and gauges equal what happened."""

from __future__ import annotations

import threading
import time

from starq.server.engine.models import STATUSES


def _cycle(client, queue: str) -> None:
    """3 jobs in: one completed, one failed and retried, one dead-lettered at once."""
    assert client.post("/api/v1/queues", json={"name": queue, "retry_delay": 0}).status_code == 201
    r = client.post(f"/api/v1/queues/{queue}/jobs", json={"jobs": [{"payload": {"n": i}} for i in range(3)]})
    assert r.status_code == 201
    jobs = client.post(f"/api/v1/queues/{queue}/jobs/claim", json={"count": 3}).json()["jobs"]
    assert len(jobs) == 3
    a, b, c = jobs
    assert (
        client.put(f"/api/v1/queues/{queue}/jobs/{a['id']}/complete", json={"lease_id": a["lease_id"]}).status_code
        == 200
    )
    assert (
        client.put(f"/api/v1/queues/{queue}/jobs/{b['id']}/fail", json={"lease_id": b["lease_id"]}).json()["status"]
        == "pending"
    )
    r = client.put(f"/api/v1/queues/{queue}/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "retry": False})
    assert r.json()["status"] == "failed"


def test_job_counters_and_depth_match_what_happened(server, api, scrape, queue_name):
    client = api(server.url)
    _cycle(client, queue_name)
    m = scrape(server.url)
    q = {"queue": queue_name}
    assert m.value("starq_jobs_submitted_total", **q) == 3
    assert m.value("starq_jobs_claimed_total", **q) == 3
    assert m.value("starq_jobs_completed_total", **q) == 1
    assert m.value("starq_jobs_failed_total", **q) == 2
    assert m.value("starq_jobs_retried_total", **q) == 1
    assert m.value("starq_jobs_dead_lettered_total", **q) == 1
    info = client.get(f"/api/v1/queues/{queue_name}").json()
    for status in STATUSES:
        assert m.value("starq_queue_jobs", queue=queue_name, status=status) == info[status], status
    assert m.value("starq_queue_jobs", queue=queue_name, status="pending") == 1
    assert m.value("starq_queue_paused", **q) == 0
    assert m.value("starq_store_up") == 1
    # Run time is measured for the two jobs claimed and reported through this process, first-claim queueing
    # for all three.
    assert m.value("starq_job_run_seconds_count", queue=queue_name, outcome="completed") == 1
    assert m.value("starq_job_run_seconds_count", queue=queue_name, outcome="failed") == 2
    assert m.value("starq_job_queued_seconds_count", **q) == 3
    assert m.value("starq_claim_wait_seconds_count", queue=queue_name, outcome="jobs") == 1


def test_a_batch_ack_counts_each_outcome(server, api, scrape, queue_name):
    client = api(server.url)
    assert client.post("/api/v1/queues", json={"name": queue_name, "retry_delay": 0}).status_code == 201
    r = client.post(f"/api/v1/queues/{queue_name}/jobs", json={"jobs": [{"payload": {"n": i}} for i in range(4)]})
    assert r.status_code == 201
    a, b, c, d = client.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={"count": 4}).json()["jobs"]
    r = client.post(
        f"/api/v1/queues/{queue_name}/jobs/ack",
        json={
            "complete": [
                {"id": a["id"], "lease_id": a["lease_id"]},
                {"id": b["id"], "lease_id": b["lease_id"]},
                {"id": c["id"], "lease_id": "stale"},
            ],
            "fail": [{"id": d["id"], "lease_id": d["lease_id"], "retry": False}],
        },
    )
    assert r.status_code == 200 and r.json()["completed"] == 2 and r.json()["errors"] == 1
    m = scrape(server.url)
    q = {"queue": queue_name}
    assert m.value("starq_jobs_completed_total", **q) == 2
    assert m.value("starq_jobs_failed_total", **q) == 1
    assert m.value("starq_jobs_dead_lettered_total", **q) == 1
    assert m.value("starq_job_run_seconds_count", queue=queue_name, outcome="completed") == 2
    assert m.value("starq_job_run_seconds_count", queue=queue_name, outcome="failed") == 1


def test_deleted_queue_leaves_the_depth_gauges(server, api, scrape, queue_name):
    client = api(server.url)
    assert client.post("/api/v1/queues", json={"name": queue_name}).status_code == 201
    assert scrape(server.url).value("starq_queue_jobs", queue=queue_name, status="pending") == 0
    assert client.delete(f"/api/v1/queues/{queue_name}").status_code == 200
    assert scrape(server.url).total("starq_queue_jobs", queue=queue_name) == 0
    assert not [
        s for s in scrape(server.url).samples if s.name == "starq_queue_jobs" and s.labels["queue"] == queue_name
    ]


def test_http_requests_by_route_and_status(server, api, scrape, queue_name):
    client = api(server.url)
    route = "/api/v1/queues/{name}"
    labels = {"method": "GET", "route": route, "status": "404"}
    before = scrape(server.url).total("starq_http_requests_total", **labels)
    before_latency = scrape(server.url).total("starq_http_request_duration_seconds_count", **labels)
    for _ in range(3):
        assert client.get(f"/api/v1/queues/{queue_name}").status_code == 404
    m = scrape(server.url)
    assert m.value("starq_http_requests_total", **labels) - before == 3
    assert m.value("starq_http_request_duration_seconds_count", **labels) - before_latency == 3
    # A path no route matches is counted under one label, not under its raw path.
    client.get("/no/such/thing")
    assert scrape(server.url).value("starq_http_requests_total", route="unmatched", status="404") >= 1


def test_waiting_long_polls_are_a_gauge(server, api, scrape, queue_name):
    client = api(server.url)
    assert client.post("/api/v1/queues", json={"name": queue_name}).status_code == 201
    answers = []
    poll = threading.Thread(
        target=lambda: answers.append(
            api(server.url).post(f"/api/v1/queues/{queue_name}/jobs/claim", json={"block_ms": 20000})
        )
    )
    poll.start()
    deadline = time.monotonic() + 10
    while scrape(server.url).value("starq_claims_waiting") < 1:
        assert time.monotonic() < deadline, "the long-poll never showed as waiting"
        time.sleep(0.05)
    client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {}})
    poll.join(15)
    assert answers and len(answers[0].json()["jobs"]) == 1
    m = scrape(server.url)
    assert m.value("starq_claim_wait_seconds_count", queue=queue_name, outcome="jobs") == 1
    assert m.value("starq_claim_wait_seconds_sum", queue=queue_name, outcome="jobs") > 0


def test_expired_leases_count_as_reclaimed(server, api, scrape, queue_name):
    client = api(server.url)
    assert client.post("/api/v1/queues", json={"name": queue_name, "claim_timeout": 1}).status_code == 201
    client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {}})
    assert len(client.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={}).json()["jobs"]) == 1
    deadline = time.monotonic() + 10
    while True:
        try:
            if scrape(server.url).value("starq_jobs_reclaimed_total", queue=queue_name) == 1:
                break
        except KeyError:
            pass
        assert time.monotonic() < deadline, "the expired lease was never counted"
        time.sleep(0.1)
    # Retried counts failures workers reported; an expired lease is counted as reclaimed only.
    assert scrape(server.url).total("starq_jobs_retried_total", queue=queue_name) == 0


def test_store_round_trips_are_timed(server, api, scrape, queue_name):
    client = api(server.url)
    client.post("/api/v1/queues", json={"name": queue_name})
    client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {}})
    m = scrape(server.url)
    assert m.value("starq_store_operation_seconds_count", operation="submit") >= 1
    assert m.value("starq_store_operation_seconds_count", operation="create_queue") >= 1
    assert m.families["starq_store_operation_seconds"].type == "histogram"


def test_store_down_is_reported_not_an_error(server_factory, scrape, tmp_path):
    from starq.server.embedded import start_store

    store = start_store(tmp_path, unix_socket=False, appendonly=False)
    proc = server_factory("--redis-url", store.url, redis=False)
    assert scrape(proc.url).value("starq_store_up") == 1
    store.kill()
    m = scrape(proc.url)
    assert m.value("starq_store_up") == 0
    assert m.total("starq_store_errors_total") >= 1


def test_no_created_series_and_every_counter_is_typed_counter(server, api, queue_name):
    """prometheus-client adds a ``*_created`` series per counter and histogram child, typed ``gauge`` in the text
    format; Starq turns them off, so every family is exposed with the type it was declared with."""
    from starq.server.metrics import Metrics

    client = api(server.url)
    _cycle(client, queue_name)  # every job counter gets a child, so each would have its _created series
    text = client.get("/metrics").text
    assert "_created" not in text
    types = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    declared = {family.name: family.type for family in Metrics().registry.collect()}
    counters = {name for name, kind in declared.items() if kind == "counter"}
    assert {"starq_jobs_submitted", "starq_jobs_dead_lettered", "starq_http_requests"} <= counters
    for name in counters:
        assert types[name + "_total"] == "counter", name
    # Every family on the page is one Starq declared, with its declared type (no companion series).
    exposed = {name.removesuffix("_total") if kind == "counter" else name: kind for name, kind in types.items()}
    assert exposed == declared


def test_flow_control_is_counted(server, api, scrape, queue_name):
    """Claims held back by the rate limit and by the queue's concurrency, jobs waiting for their key's turn, and
    schedule runs."""
    client = api(server.url)
    body = {"name": queue_name, "concurrency": 1, "key_concurrency": 1, "rate_limit": {"max": 5, "per_ms": 60000}}
    assert client.post("/api/v1/queues", json=body).status_code == 201
    jobs = [{"payload": {"n": i}, "key": "k"} for i in range(3)]
    assert client.post(f"/api/v1/queues/{queue_name}/jobs", json={"jobs": jobs}).status_code == 201
    assert len(client.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={"count": 3}).json()["jobs"]) == 1
    r = client.post(f"/api/v1/queues/{queue_name}/schedules", json={"name": "sec", "cron": "* * * * * *"})
    assert r.status_code == 201
    time.sleep(2.5)
    m = scrape(server.url)
    assert m.value("starq_claims_limited_total", queue=queue_name, limit="concurrency") == 1
    assert m.value("starq_queue_held_by_key", queue=queue_name) == 2
    assert m.value("starq_schedule_runs_total", queue=queue_name, schedule="sec") >= 1
    client.patch(f"/api/v1/queues/{queue_name}", json={"concurrency": 0, "rate_limit": {"max": 1, "per_ms": 60000}})
    client.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={"count": 3})
    assert scrape(server.url).value("starq_claims_limited_total", queue=queue_name, limit="rate") >= 1
    client.delete(f"/api/v1/queues/{queue_name}")  # its schedule would go on for the rest of the session


def test_queue_latency_and_maintenance_lag_are_gauges(server, api, scrape, queue_name):
    client = api(server.url)
    assert client.post("/api/v1/queues", json={"name": queue_name}).status_code == 201
    m = scrape(server.url)
    assert m.value("starq_queue_oldest_pending_seconds", queue=queue_name) == 0
    assert client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {}}).status_code == 201
    time.sleep(1.1)
    m = scrape(server.url)
    assert 1.0 <= m.value("starq_queue_oldest_pending_seconds", queue=queue_name) < 60
    # The maintenance loop ticks every queue twice a second: caught up, every kind's lag is 0.
    for kind in ("promote", "reclaim", "expire"):
        assert m.value("starq_maintenance_lag_seconds", queue=queue_name, kind=kind) == 0
