"""Every endpoint of the API and the keys of every response, through the Quart test client."""

from __future__ import annotations

import time
from datetime import datetime

import trio

from api.helpers import KEY, assert_error

JOB_KEYS = {
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
}
QUEUE_KEYS = {
    "name",
    "description",
    "max_retries",
    "claim_timeout",
    "dedupe",
    "pending",
    "claimed",
    "completed",
    "failed",
    "retry_delay",
    "retry_delay_max",
    "retention",
    "scheduled",
    "paused",
    "created_at",
}


def is_iso(text: str) -> bool:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None


async def test_health(api):
    r = await api.client.get("/api/health")
    assert r.status_code == 200
    assert (await r.get_json())["status"] == "ok"


async def test_create_queue_defaults_and_info_keys(api, queue_name):
    info = await api.create(queue_name)
    assert set(info) >= QUEUE_KEYS
    assert info["name"] == queue_name and info["description"] == ""
    assert (info["max_retries"], info["claim_timeout"], info["dedupe"]) == (3, 600, False)
    assert (info["retry_delay"], info["retry_delay_max"], info["retention"]) == (1, 300, 7 * 86400)
    assert all(info[s] == 0 for s in ("pending", "claimed", "completed", "failed", "scheduled"))
    assert info["paused"] is False and is_iso(info["created_at"])
    again = await api.info(queue_name)
    assert again == info


async def test_create_queue_with_settings(api, queue_name):
    info = await api.create(
        queue_name,
        description="emails",
        max_retries=0,
        claim_timeout=5,
        dedupe=True,
        retry_delay=0,
        retry_delay_max=10,
        retention=60,
    )
    assert (info["description"], info["max_retries"], info["claim_timeout"], info["dedupe"]) == ("emails", 0, 5, True)
    assert (info["retry_delay"], info["retry_delay_max"], info["retention"]) == (0, 10, 60)


async def test_create_existing_queue_is_409_and_unchanged(api, queue_name):
    await api.create(queue_name, max_retries=1)
    r = await api.client.post("/api/v1/queues", json={"name": queue_name, "max_retries": 9}, headers=KEY)
    await assert_error(r, 409, "queue_exists")
    assert (await api.info(queue_name))["max_retries"] == 1


async def test_list_queues_sorted_by_name(api, queue_name):
    for suffix in ("c", "a", "b"):
        await api.create(f"{queue_name}-{suffix}")
    r = await api.client.get("/api/v1/queues")
    queues = (await r.get_json())["queues"]
    names = [q["name"] for q in queues]
    assert names == sorted(names)
    mine = [q for q in queues if q["name"].startswith(queue_name)]
    assert [q["name"] for q in mine] == [f"{queue_name}-{s}" for s in "abc"]
    assert all(set(q) >= QUEUE_KEYS for q in mine)


async def test_patch_pause_resume_delete(api, queue_name):
    await api.create(queue_name)
    r = await api.client.patch(f"/api/v1/queues/{queue_name}", json={"max_retries": 5, "description": "x"}, headers=KEY)
    assert r.status_code == 200
    body = await r.get_json()
    assert (body["max_retries"], body["description"], body["claim_timeout"]) == (5, "x", 600)
    r = await api.client.post(f"/api/v1/queues/{queue_name}/pause", headers=KEY)
    assert r.status_code == 200 and (await r.get_json())["paused"] is True
    await api.submit(queue_name, {"payload": {"a": 1}})
    assert await api.claim(queue_name) == []
    r = await api.client.post(f"/api/v1/queues/{queue_name}/resume", headers=KEY)
    assert r.status_code == 200 and (await r.get_json())["paused"] is False
    assert len(await api.claim(queue_name)) == 1
    r = await api.client.delete(f"/api/v1/queues/{queue_name}", headers=KEY)
    assert r.status_code == 200
    assert await r.get_json() == {"status": "deleted", "queue": queue_name}
    await assert_error(await api.client.get(f"/api/v1/queues/{queue_name}"), 404, "queue_not_found")


async def test_submit_single_and_batch_response(api, queue_name):
    await api.create(queue_name)
    one = await api.submit(queue_name, {"payload": {"a": 1}, "priority": 4})
    assert (one["submitted"], one["skipped"]) == (1, 0)
    (job,) = one["jobs"]
    assert set(job) >= JOB_KEYS
    assert (job["status"], job["payload"], job["priority"], job["queue"]) == ("pending", {"a": 1}, 4, queue_name)
    assert job["result"] is None and job["retries"] == 0 and is_iso(job["created_at"])
    assert job["claimed_at"] == "" and job["completed_at"] == ""
    batch = await api.submit(queue_name, {"jobs": [{"payload": {"i": i}, "priority": i % 3} for i in range(5)]})
    assert batch["submitted"] == 5 and [j["payload"] for j in batch["jobs"]] == [{"i": i} for i in range(5)]
    assert (await api.info(queue_name))["pending"] == 6


async def test_submitted_jobs_show_as_a_read_of_them_does(api, queue_name):
    """The submit answer is built without reading the jobs back; each must still be what GET shows."""
    await api.create(queue_name)
    plain = {"payload": {"plain": 1}}
    optioned = {"payload": {"o": 1}, "key": "k", "unique_key": "u", "unique_for": 60, "timeout": 30,
                "max_retries": 2, "tags": ["a", "b"], "delay": 3600}  # fmt: skip
    dependent = {"payload": {"d": 1}, "depends_on": ["#0", "#1"], "on_dependency_failure": "run"}
    submitted = (await api.submit(queue_name, {"jobs": [plain, optioned, dependent], "batch": {}}))["jobs"]
    submitted += (await api.submit(queue_name, {**plain, "priority": 7, "run_at": "2999-01-01T00:00:00Z"}))["jobs"]
    for job in submitted:
        r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{job['id']}")
        shown = await r.get_json()
        assert {k: v for k, v in shown.items() if k not in ("history", "dependents")} == job
    assert submitted[2]["depends_on"] == [submitted[0]["id"], submitted[1]["id"]]


async def test_submit_with_dedupe_reports_skipped(api, queue_name):
    await api.create(queue_name, dedupe=True)
    first = await api.submit(queue_name, {"payload": {"k": 1}})
    again = await api.submit(queue_name, {"jobs": [{"payload": {"k": k}} for k in (1, 2, 2)]})
    assert (again["submitted"], again["skipped"]) == (1, 2)
    assert again["jobs"][0]["id"] == first["jobs"][0]["id"]
    assert (await api.info(queue_name))["pending"] == 2


async def test_submit_delay_and_run_at_schedule(api, queue_name):
    await api.create(queue_name)
    delayed = await api.submit(queue_name, {"payload": {"a": 1}, "delay": 0.3})
    at = await api.submit(queue_name, {"jobs": [{"payload": {"b": 1}, "run_at": "2999-01-01T00:00:00Z"}]})
    assert delayed["jobs"][0]["status"] == "scheduled" and is_iso(delayed["jobs"][0]["run_at"])
    assert at["jobs"][0]["status"] == "scheduled" and at["jobs"][0]["run_at"].startswith("2999-01-01T00:00:00")
    assert (await api.info(queue_name))["scheduled"] == 2
    due = datetime.fromisoformat(delayed["jobs"][0]["run_at"].replace("Z", "+00:00")).timestamp()
    # Not due, unless this busy machine took the 300 ms to get here (the claim ran before its answer came).
    assert await api.claim(queue_name) == [] or time.time() >= due
    await trio.sleep(max(0.0, due - time.time()) + 0.05)
    (job,) = await api.claim(queue_name, 5)
    assert job["payload"] == {"a": 1}


async def test_one_job_created_submitted_claimed_and_completed(api, queue_name):
    """The smallest whole cycle: a claim for more jobs than there are gets the one there is."""
    await api.create(queue_name)
    await api.submit(queue_name, {"payload": {"x": 1}})
    (job,) = await api.claim(queue_name, 2)
    r = await api.client.put(
        f"/api/v1/queues/{queue_name}/jobs/{job['id']}/complete",
        json={"lease_id": job["lease_id"], "result": {"ok": 1}},
        headers=KEY,
    )
    assert (await r.get_json()) == {"status": "completed", "job_id": job["id"]}


async def test_claim_response_and_complete(api, queue_name):
    await api.create(queue_name)
    await api.submit(queue_name, {"payload": {"a": 1}})
    (job,) = await api.claim(queue_name, 5, worker="w-1")
    assert set(job) >= JOB_KEYS
    assert job["status"] == "claimed" and job["lease_id"] and is_iso(job["lease_expires_at"])
    assert job["worker"] == "w-1" and is_iso(job["claimed_at"])
    path = f"/api/v1/queues/{queue_name}/jobs/{job['id']}/complete"
    r = await api.client.put(path, json={"result": {"ok": True}, "lease_id": job["lease_id"]}, headers=KEY)
    assert r.status_code == 200 and await r.get_json() == {"status": "completed", "job_id": job["id"]}
    # Safe to retry with the same lease.
    r = await api.client.put(path, json={"result": {"ok": True}, "lease_id": job["lease_id"]}, headers=KEY)
    assert r.status_code == 200 and await r.get_json() == {"status": "completed", "job_id": job["id"]}
    r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{job['id']}")
    shown = await r.get_json()
    assert shown["status"] == "completed" and shown["result"] == {"ok": True} and is_iso(shown["completed_at"])
    assert [h["event"] for h in shown["history"]] == ["submitted", "claimed", "completed"]
    info = await api.info(queue_name)
    assert (info["completed"], info["claimed"]) == (1, 0)


async def test_complete_with_no_body_like_the_original_worker(api, queue_name):
    await api.create(queue_name)
    await api.submit(queue_name, {"payload": {"a": 1}})
    (job,) = await api.claim(queue_name)
    r = await api.client.put(f"/api/v1/queues/{queue_name}/jobs/{job['id']}/complete", headers=KEY)
    assert r.status_code == 200
    shown = await (await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{job['id']}")).get_json()
    assert shown["result"] == {}


async def test_complete_conflicts(api, queue_name):
    await api.create(queue_name)
    pending = (await api.submit(queue_name, {"payload": {"a": 1}}))["jobs"][0]
    path = f"/api/v1/queues/{queue_name}/jobs/{pending['id']}/complete"
    await assert_error(await api.client.put(path, json={}, headers=KEY), 409, "not_claimed")
    (job,) = await api.claim(queue_name)
    r = await api.client.put(path, json={"lease_id": "someone-else"}, headers=KEY)
    await assert_error(r, 409, "lease_lost")
    assert (await api.info(queue_name))["claimed"] == 1


async def test_fail_response_retry_and_dead(api, queue_name):
    await api.create(queue_name, max_retries=1, retry_delay=0)
    await api.submit(queue_name, {"payload": {"a": 1}})
    (job,) = await api.claim(queue_name)
    path = f"/api/v1/queues/{queue_name}/jobs/{job['id']}/fail"
    r = await api.client.put(path, json={"error": "boom", "lease_id": job["lease_id"]}, headers=KEY)
    assert await r.get_json() == {"status": "pending", "job_id": job["id"], "retries": 1}
    r = await api.client.put(path, json={"error": "boom", "lease_id": job["lease_id"]}, headers=KEY)
    assert r.status_code == 200  # the same fail again is answered, not counted
    (again,) = await api.claim(queue_name)
    assert again["retries"] == 1 and again["error"] == "boom"
    r = await api.client.put(path, json={"error": "boom2", "lease_id": job["lease_id"]}, headers=KEY)
    await assert_error(r, 409, "lease_lost")
    r = await api.client.put(path, json={"error": "boom2", "lease_id": again["lease_id"]}, headers=KEY)
    assert await r.get_json() == {"status": "failed", "job_id": job["id"], "retries": 1}
    info = await api.info(queue_name)
    assert (info["failed"], info["pending"], info["claimed"]) == (1, 0, 0)


async def test_fail_with_retry_false(api, queue_name):
    await api.create(queue_name, max_retries=5)
    await api.submit(queue_name, {"payload": {"a": 1}})
    (job,) = await api.claim(queue_name)
    r = await api.client.put(
        f"/api/v1/queues/{queue_name}/jobs/{job['id']}/fail", json={"error": "bad input", "retry": False}, headers=KEY
    )
    assert await r.get_json() == {"status": "failed", "job_id": job["id"], "retries": 0}


async def test_extend(api, queue_name):
    await api.create(queue_name, claim_timeout=5)
    await api.submit(queue_name, {"payload": {"a": 1}})
    (job,) = await api.claim(queue_name)
    path = f"/api/v1/queues/{queue_name}/jobs/{job['id']}/extend"
    r = await api.client.put(path, json={"lease_id": job["lease_id"], "seconds": 100}, headers=KEY)
    body = await r.get_json()
    assert r.status_code == 200 and body["status"] == "claimed" and body["job_id"] == job["id"]
    assert body["lease_expires_at"] > job["lease_expires_at"]
    await assert_error(await api.client.put(path, json={"lease_id": "stale"}, headers=KEY), 409, "lease_lost")
    r = await api.client.put(path, headers=KEY)  # default: claim_timeout from now
    assert r.status_code == 200 and (await r.get_json())["lease_expires_at"] < body["lease_expires_at"]


async def test_ack_batch(api, queue_name):
    await api.create(queue_name, retry_delay=0)
    await api.submit(queue_name, {"jobs": [{"payload": {"i": i}} for i in range(3)]})
    a, b, c = await api.claim(queue_name, 3)
    r = await api.client.post(
        f"/api/v1/queues/{queue_name}/jobs/ack",
        headers=KEY,
        json={
            "complete": [
                {"id": a["id"], "lease_id": a["lease_id"], "result": {"n": 1}},
                {"id": b["id"], "lease_id": "x"},
            ],
            "fail": [{"id": c["id"], "lease_id": c["lease_id"], "error": "e"}],
        },
    )
    body = await r.get_json()
    assert r.status_code == 200
    assert (body["completed"], body["failed"], body["errors"]) == (1, 1, 1)
    ra, rb, rc = body["results"]
    assert ra == {"job_id": a["id"], "ok": True, "status": "completed", "retries": 0}
    assert rb["ok"] is False and rb["error"] == "lease_lost" and rb["detail"]
    assert rc == {"job_id": c["id"], "ok": True, "status": "pending", "retries": 1}


async def test_cancel_and_retry_one(api, queue_name):
    await api.create(queue_name)
    job = (await api.submit(queue_name, {"payload": {"a": 1}}))["jobs"][0]
    r = await api.client.delete(f"/api/v1/queues/{queue_name}/jobs/{job['id']}", headers=KEY)
    assert await r.get_json() == {"status": "cancelled", "job_id": job["id"]}
    r = await api.client.delete(f"/api/v1/queues/{queue_name}/jobs/{job['id']}", headers=KEY)
    await assert_error(r, 409, "invalid_state")
    r = await api.client.post(f"/api/v1/queues/{queue_name}/jobs/{job['id']}/retry", headers=KEY)
    assert await r.get_json() == {"status": "pending", "job_id": job["id"]}
    r = await api.client.post(f"/api/v1/queues/{queue_name}/jobs/{job['id']}/retry", headers=KEY)
    await assert_error(r, 409, "invalid_state")
    # A claimed job is cancelled too; its worker's next report learns it (409 job_cancelled).
    (claimed,) = await api.claim(queue_name)
    r = await api.client.delete(f"/api/v1/queues/{queue_name}/jobs/{job['id']}", headers=KEY)
    assert await r.get_json() == {"status": "cancelled", "job_id": job["id"]}
    body = {"lease_id": claimed["lease_id"]}
    for action in ("complete", "fail", "extend"):
        r = await api.client.put(f"/api/v1/queues/{queue_name}/jobs/{job['id']}/{action}", json=body, headers=KEY)
        await assert_error(r, 409, "job_cancelled")
    info = await api.info(queue_name)
    assert (info["claimed"], info["cancelled"]) == (0, 1)


async def test_retry_dead_jobs_of_a_queue(api, queue_name):
    await api.create(queue_name, max_retries=0)
    await api.submit(queue_name, {"jobs": [{"payload": {"i": i}} for i in range(3)]})
    for job in await api.claim(queue_name, 3):
        await api.client.put(f"/api/v1/queues/{queue_name}/jobs/{job['id']}/fail", json={}, headers=KEY)
    assert (await api.info(queue_name))["failed"] == 3
    r = await api.client.post(f"/api/v1/queues/{queue_name}/retry", headers=KEY)
    assert await r.get_json() == {"status": "ok", "queue": queue_name, "retried": 3}
    info = await api.info(queue_name)
    assert (info["failed"], info["pending"]) == (0, 3)


async def test_list_jobs_status_filter_and_cursor(api, queue_name):
    await api.create(queue_name)
    submitted = await api.submit(queue_name, {"jobs": [{"payload": {"i": i}} for i in range(12)]})
    ids = [j["id"] for j in submitted["jobs"]]
    for job_id in ids[::2]:
        await api.client.delete(f"/api/v1/queues/{queue_name}/jobs/{job_id}", headers=KEY)
    seen, cursor, sizes = [], "", []
    while True:
        r = await api.client.get(
            f"/api/v1/queues/{queue_name}/jobs", query_string={"status": "cancelled", "count": 4, "cursor": cursor}
        )
        body = await r.get_json()
        assert set(body) == {"jobs", "cursor", "has_more"}
        sizes.append(len(body["jobs"]))
        seen += [j["id"] for j in body["jobs"]]
        assert all(j["status"] == "cancelled" for j in body["jobs"])
        if not body["has_more"]:
            assert body["cursor"] == ""
            break
        cursor = body["cursor"]
    assert seen == list(reversed(ids[::2])) and sizes == [4, 2]
    r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs")
    body = await r.get_json()
    assert [j["id"] for j in body["jobs"]] == list(reversed(ids)) and body["has_more"] is False


async def test_get_unknown_job_is_404(api, queue_name):
    await api.create(queue_name)
    await assert_error(await api.client.get(f"/api/v1/queues/{queue_name}/jobs/nope"), 404, "job_not_found")


async def test_stats(api, queue_name):
    await api.create(queue_name)
    await api.submit(queue_name, {"payload": {"a": 1}})
    (job,) = await api.claim(queue_name, worker="w9")
    await api.client.put(f"/api/v1/queues/{queue_name}/jobs/{job['id']}/complete", headers=KEY)
    body = await (await api.client.get(f"/api/v1/queues/{queue_name}/stats")).get_json()
    assert body["queue"] == queue_name and sum(b["completed"] for b in body["throughput"]) == 1
    assert [w["name"] for w in body["workers"]] == ["w9"]


async def test_long_poll_claim_is_answered_when_a_job_arrives(api, queue_name):
    await api.create(queue_name)
    got = []

    async def waiter():
        got.extend(await api.claim(queue_name, 1, block_ms=20_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        while api.hub.claims.waiting == 0:
            await trio.sleep(0.01)
        await api.submit(queue_name, {"payload": {"late": 1}})
    assert [j["payload"] for j in got] == [{"late": 1}]


async def test_long_poll_times_out_with_no_jobs(api, queue_name):
    await api.create(queue_name)
    start = trio.current_time()
    assert await api.claim(queue_name, 1, block_ms=300) == []
    assert trio.current_time() - start >= 0.29


async def test_docs_page(api):
    r = await api.client.get("/api/docs")
    assert r.status_code == 200 and "text/html" in r.content_type
