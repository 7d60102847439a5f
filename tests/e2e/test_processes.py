"""Real ``starq serve`` processes: one answers its health check; several on one store share the work (a submit
through one wakes a long-poll parked on another)."""

from __future__ import annotations

import threading

import httpx

from e2e.helpers import KEY, api, create_queue


def test_a_served_process_answers_its_health_check(server):
    r = httpx.get(server.url + "/api/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_submit_via_one_process_wakes_a_waiter_on_another(server, server_factory, queue_name):
    other = server_factory()
    create_queue(server, queue_name)
    answers: list[httpx.Response] = []

    def long_poll():
        answers.append(
            httpx.post(
                f"{api(server)}/{queue_name}/jobs/claim", json={"count": 1, "block_ms": 30_000}, headers=KEY, timeout=60
            )
        )

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    try:
        deadline_polls = 0
        while httpx.get(f"{server.url}/api/health", timeout=30).json()["waiting_claims"] < 1:
            deadline_polls += 1
            assert deadline_polls < 600, "the long-poll never parked"
            threading.Event().wait(0.05)
        r = httpx.post(f"{api(other)}/{queue_name}/jobs", json={"payload": {"via": "other"}}, headers=KEY, timeout=30)
        assert r.status_code == 201
    finally:
        waiter.join(40)
    (resp,) = answers
    assert resp.status_code == 200
    (job,) = resp.json()["jobs"]
    assert job["payload"] == {"via": "other"} and job["status"] == "claimed"
    # It was delivered once: the submitting process has nothing left to hand out.
    left = httpx.post(f"{api(other)}/{queue_name}/jobs/claim", json={"count": 5}, headers=KEY, timeout=30)
    assert left.json()["jobs"] == []


def test_many_waiters_across_processes_get_each_job_once(server, server_factory, queue_name):
    other = server_factory()
    create_queue(server, queue_name)
    got: list[dict] = []
    lock = threading.Lock()

    def worker(target):
        with httpx.Client(timeout=30, headers=KEY) as client:
            while True:
                jobs = client.post(
                    f"{api(target)}/{queue_name}/jobs/claim", json={"count": 3, "block_ms": 1500}
                ).json()["jobs"]
                if not jobs:
                    return
                with lock:
                    got.extend(jobs)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (server, other) * 4]
    for t in threads:
        t.start()
    with httpx.Client(timeout=30, headers=KEY) as client:
        for start in range(0, 120, 20):
            r = client.post(
                f"{api(server if start % 40 else other)}/{queue_name}/jobs",
                json={"jobs": [{"payload": {"i": i}} for i in range(start, start + 20)]},
            )
            assert r.status_code == 201
    for t in threads:
        t.join(60)
    ids = [j["id"] for j in got]
    assert len(ids) == len(set(ids)) == 120
    assert sorted(j["payload"]["i"] for j in got) == list(range(120))
