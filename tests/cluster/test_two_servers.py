"""The core API through two ``starq serve`` processes on one 3-node cluster at once: whatever is done
through one is seen through the other, and a long-poll parked in one wakes for a submit through the other."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

KEY = {"X-API-Key": "dev-key"}


@pytest.fixture(scope="module")
def servers(cluster_url):
    """Two processes for the module: one given the cluster URL, one a plain URL and --redis-cluster."""
    from serverproc import start_server

    a = start_server("--redis-url", cluster_url)
    try:
        b = start_server("--redis-cluster", "--redis-url", cluster_url.replace("redis+cluster://", "redis://"))
    except BaseException:
        a.kill()
        raise
    yield a, b
    for proc in (a, b):
        proc.kill()


@pytest.fixture
def pair(servers):
    a, b = servers
    with (
        httpx.Client(base_url=a.url + "/api/v1", headers=KEY, timeout=30) as ca,
        httpx.Client(base_url=b.url + "/api/v1", headers=KEY, timeout=30) as cb,
    ):
        yield ca, cb


def queues(n: int) -> list[str]:
    return [f"p-{uuid.uuid4().hex[:8]}" for _ in range(n)]


def test_submit_through_one_claim_and_report_through_the_other(pair):
    a, b = pair
    for name in queues(6):  # six names: they spread over the three shards
        assert a.post("/queues", json={"name": name, "max_retries": 1, "retry_delay": 0}).status_code == 201
        assert b.get(f"/queues/{name}").json()["name"] == name
        submitted = a.post(f"/queues/{name}/jobs", json={"jobs": [{"payload": {"i": i}} for i in range(4)]})
        assert submitted.json()["submitted"] == 4
        jobs = b.post(f"/queues/{name}/jobs/claim", json={"count": 4, "worker": "w-b"}).json()["jobs"]
        assert sorted(j["payload"]["i"] for j in jobs) == [0, 1, 2, 3]
        j0, j1, j2, j3 = jobs
        assert (
            a.put(
                f"/queues/{name}/jobs/{j0['id']}/complete", json={"lease_id": j0["lease_id"], "result": {"ok": True}}
            ).status_code
            == 200
        )
        assert b.get(f"/queues/{name}/jobs/{j0['id']}").json()["result"] == {"ok": True}
        assert a.put(f"/queues/{name}/jobs/{j1['id']}/extend", json={"lease_id": j1["lease_id"]}).status_code == 200
        acked = a.post(
            f"/queues/{name}/jobs/ack",
            json={
                "complete": [{"id": j1["id"], "lease_id": j1["lease_id"]}],
                "fail": [{"id": j2["id"], "lease_id": j2["lease_id"], "error": "x", "retry": False}],
            },
        ).json()
        assert (acked["completed"], acked["failed"], acked["errors"]) == (1, 1, 0)
        assert (
            b.put(f"/queues/{name}/jobs/{j3['id']}/fail", json={"lease_id": j3["lease_id"]}).json()["status"]
            == "pending"
        )
        assert b.post(f"/queues/{name}/retry").status_code == 200
        info_a, info_b = a.get(f"/queues/{name}").json(), b.get(f"/queues/{name}").json()
        assert info_a == info_b
        assert (info_a["completed"], info_a["failed"], info_a["pending"]) == (2, 0, 2)
        listed = b.get(f"/queues/{name}/jobs", params={"status": "pending"}).json()["jobs"]
        assert sorted(j["id"] for j in listed) == sorted([j2["id"], j3["id"]])
    names_a = {q["name"] for q in a.get("/queues").json()["queues"]}
    names_b = {q["name"] for q in b.get("/queues").json()["queues"]}
    assert names_a == names_b


def test_a_long_poll_in_one_process_wakes_for_a_submit_through_the_other(pair):
    a, b = pair
    waits = []
    for name in queues(3):
        assert a.post("/queues", json={"name": name}).status_code == 201
        answers: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda n=name, answers=answers: answers.append(
                b.post(f"/queues/{n}/jobs/claim", json={"block_ms": 30000})
            )
        )
        poll.start()
        time.sleep(0.5)  # let it park (a claim that arrives after the job gets it at once, which proves nothing)
        assert not answers, "the claim did not wait"
        started = time.monotonic()
        a.post(f"/queues/{name}/jobs", json={"payload": {"q": name}})
        poll.join(30)
        waits.append(time.monotonic() - started)
        (answer,) = answers
        assert [j["payload"] for j in answer.json()["jobs"]] == [{"q": name}]
    # Not a speed test; the waits are printed so a run shows them (pub/sub: milliseconds, not the 1 s re-check).
    print("cross-process wake-ups (s):", [round(w, 3) for w in waits])


def test_pause_and_delete_through_one_process_hold_in_the_other(pair):
    a, b = pair
    (name,) = queues(1)
    a.post("/queues", json={"name": name})
    a.post(f"/queues/{name}/jobs", json={"payload": {}})
    assert b.post(f"/queues/{name}/pause").json()["paused"] is True
    assert a.post(f"/queues/{name}/jobs/claim", json={}).json()["jobs"] == []
    b.post(f"/queues/{name}/resume")
    assert len(a.post(f"/queues/{name}/jobs/claim", json={}).json()["jobs"]) == 1
    answers: list[httpx.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(a.post(f"/queues/{name}/jobs/claim", json={"block_ms": 30000}))
    )
    poll.start()
    time.sleep(0.5)
    assert b.delete(f"/queues/{name}").status_code == 200
    poll.join(25)
    assert answers, "a claim parked on a deleted queue kept waiting"
    assert answers[0].status_code == 404 or answers[0].json()["jobs"] == []
    assert a.get(f"/queues/{name}").status_code == 404


def test_both_processes_serve_metrics_from_the_cluster(pair, servers, scrape_text):
    a, b = pair
    (name,) = queues(1)
    a.post("/queues", json={"name": name})
    a.post(f"/queues/{name}/jobs", json={"payload": {}})
    for proc in servers:
        text = scrape_text(proc.url)
        assert f'starq_queue_jobs{{queue="{name}",status="pending"}} 1.0' in text
        assert "starq_store_up 1.0" in text
