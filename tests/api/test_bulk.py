"""POST …/jobs/bulk: retry, cancel, promote and delete many jobs, each item on its own, over HTTP."""

from __future__ import annotations

import pytest

from api.helpers import KEY, assert_error

STATUSES = ("waiting", "pending", "scheduled", "claimed", "completed", "failed", "cancelled")
GHOST = "01900000-0000-7000-8000-000000000000"


def bulk_path(queue: str) -> str:
    return f"/api/v1/queues/{queue}/jobs/bulk"


async def bulk(api, queue: str, action: str, ids: list[str], status: int = 200) -> dict:
    r = await api.client.post(bulk_path(queue), json={"action": action, "ids": ids}, headers=KEY)
    assert r.status_code == status, await r.get_data()
    return await r.get_json()


async def counts(api, queue: str) -> dict[str, int]:
    info = await api.info(queue)
    return {s: info[s] for s in STATUSES if info.get(s)}


async def listed(api, queue: str) -> dict[str, int]:
    """The jobs the listing shows, counted by status: what the counts of queue info must equal."""
    r = await api.client.get(f"/api/v1/queues/{queue}/jobs?count=500")
    out: dict[str, int] = {}
    for job in (await r.get_json())["jobs"]:
        out[job["status"]] = out.get(job["status"], 0) + 1
    return out


async def dead(api, queue: str, n: int) -> list[str]:
    """n jobs submitted, claimed and dead-lettered; their ids."""
    jobs = (await api.submit(queue, {"jobs": [{"payload": {"i": i}} for i in range(n)]}))["jobs"]
    for job in await api.claim(queue, n):
        body = {"lease_id": job["lease_id"], "error": "boom", "retry": False}
        r = await api.client.put(f"/api/v1/queues/{queue}/jobs/{job['id']}/fail", json=body, headers=KEY)
        assert r.status_code == 200
    return [j["id"] for j in jobs]


async def test_bulk_retry_mixed_ids(api, queue_name):
    await api.create(queue_name)
    a, b = await dead(api, queue_name, 2)
    (pending,) = (await api.submit(queue_name, {"payload": {"p": 1}}))["jobs"]
    body = await bulk(api, queue_name, "retry", [a, pending["id"], GHOST, b])
    assert body["ok"] == 2 and body["errors"] == 2
    ra, rp, rg, rb = body["results"]
    assert ra == {"job_id": a, "ok": True, "status": "pending"}
    assert rb == {"job_id": b, "ok": True, "status": "pending"}
    # The same code and detail as the single route.
    single = await api.client.post(f"/api/v1/queues/{queue_name}/jobs/{pending['id']}/retry", headers=KEY)
    expected = await assert_error(single, 409, "invalid_state")
    assert rp == {"job_id": pending["id"], "ok": False, "error": "invalid_state", "detail": expected["detail"]}
    assert rg["ok"] is False and rg["error"] == "job_not_found" and rg["job_id"] == GHOST
    assert await counts(api, queue_name) == await listed(api, queue_name) == {"pending": 3}


async def test_bulk_cancel_cascades_and_keeps_counts(api, queue_name):
    await api.create(queue_name)
    a, b = (await api.submit(queue_name, {"jobs": [{"payload": {"n": 0}},
                                                   {"payload": {"n": 1}, "depends_on": ["#0"]}]}))["jobs"]  # fmt: skip
    (later,) = (await api.submit(queue_name, {"payload": {"n": 2}, "delay": 600}))["jobs"]
    body = await bulk(api, queue_name, "cancel", [a["id"], later["id"], b["id"]])
    assert [r["ok"] for r in body["results"]] == [True, True, False]
    assert body["results"][2]["error"] == "invalid_state"  # cancelled already, by a's cascade
    r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{b['id']}")
    assert (await r.get_json())["error"] == f"dependency {a['id']} was cancelled"
    assert (body["ok"], body["errors"]) == (2, 1)
    assert await counts(api, queue_name) == await listed(api, queue_name) == {"cancelled": 3}


async def test_bulk_promote(api, queue_name):
    await api.create(queue_name)
    later = (await api.submit(queue_name, {"jobs": [{"payload": {"n": i}, "delay": 600} for i in range(2)]}))["jobs"]
    ids = [later[0]["id"], later[1]["id"], later[0]["id"]]
    body = await bulk(api, queue_name, "promote", ids)
    assert [(r["ok"], r.get("status"), r.get("error")) for r in body["results"]] == [
        (True, "pending", None), (True, "pending", None), (False, None, "invalid_state"),
    ]  # fmt: skip
    assert len(await api.claim(queue_name, 5)) == 2
    assert await counts(api, queue_name) == await listed(api, queue_name) == {"claimed": 2}


async def test_bulk_delete_finished_only_and_duplicates(api, queue_name):
    await api.create(queue_name)
    (a,) = await dead(api, queue_name, 1)
    (pending,) = (await api.submit(queue_name, {"payload": {"p": 1}}))["jobs"]
    body = await bulk(api, queue_name, "delete", [a, pending["id"], a])
    assert body["results"][0] == {"job_id": a, "ok": True, "status": "deleted"}
    refused = body["results"][1]
    assert refused["error"] == "invalid_state" and "only completed, failed or cancelled" in refused["detail"]
    assert body["results"][2]["error"] == "job_not_found"
    assert (body["ok"], body["errors"]) == (1, 2)
    await assert_error(await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{a}"), 404, "job_not_found")
    assert await counts(api, queue_name) == await listed(api, queue_name) == {"pending": 1}


async def test_a_thousand_ids_pass_and_1001_are_422_naming_the_limit(api, queue_name):
    await api.create(queue_name)
    jobs = (await api.submit(queue_name, {"jobs": [{"payload": {"i": i}} for i in range(1000)]}))["jobs"]
    ids = [j["id"] for j in jobs]
    r = await api.client.post(bulk_path(queue_name), json={"action": "cancel", "ids": [*ids, GHOST]}, headers=KEY)
    await assert_error(r, 422, "validation_error", mentions="1000")
    assert await counts(api, queue_name) == {"pending": 1000}  # nothing was done
    body = await bulk(api, queue_name, "cancel", ids)
    assert (body["ok"], body["errors"]) == (1000, 0)
    assert [r["job_id"] for r in body["results"]] == ids
    assert await counts(api, queue_name) == {"cancelled": 1000}


@pytest.mark.parametrize(
    "body,mentions",
    [
        ({"action": "archive", "ids": [GHOST]}, "action"),
        ({"ids": [GHOST]}, "action"),
        ({"action": "retry"}, "ids"),
        ({"action": "retry", "ids": []}, "ids"),
        ({"action": "retry", "ids": "abc"}, "ids"),
        ({"action": "retry", "ids": [GHOST, 7]}, "ids[1]"),
        ({"action": "retry", "ids": ["no spaces allowed"]}, "ids[0]"),
        ({"action": "retry", "ids": ["x" * 65]}, "ids[0]"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(api, queue_name, body, mentions):
    await api.create(queue_name)
    r = await api.client.post(bulk_path(queue_name), json=body, headers=KEY)
    await assert_error(r, 422, "validation_error", mentions=mentions)


async def test_bulk_needs_the_key_and_a_queue(api, queue_name):
    await api.create(queue_name)
    (a,) = await dead(api, queue_name, 1)
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = await api.client.post(bulk_path(queue_name), json={"action": "retry", "ids": [a]}, headers=headers)
        await assert_error(r, 401, "unauthorized")
    assert await counts(api, queue_name) == {"failed": 1}
    r = await api.client.post(bulk_path(queue_name + "-none"), json={"action": "retry", "ids": [a]}, headers=KEY)
    await assert_error(r, 404, "queue_not_found")
