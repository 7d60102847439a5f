"""The HTTP contract of flow control and scheduling: schedules, queue limits, job options, release, promote,
purge. Error bodies name the field, with the right status."""

from __future__ import annotations

import pytest

from api.helpers import KEY, assert_error


def q(queue: str) -> str:
    return f"/api/v1/queues/{queue}"


async def test_schedule_create_list_show_update_delete(api, queue_name):
    await api.create(queue_name)
    body = {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin", "payload": {"r": 1}, "tags": ["n"]}
    r = await api.client.post(f"{q(queue_name)}/schedules", json=body, headers=KEY)
    assert r.status_code == 201, await r.get_data()
    created = await r.get_json()
    assert {k: created[k] for k in ("name", "cron", "every", "timezone", "payload", "paused", "tags")} == {
        "name": "nightly", "cron": "0 3 * * *", "every": None, "timezone": "Europe/Berlin", "payload": {"r": 1},
        "paused": False, "tags": ["n"],
    }  # fmt: skip
    assert created["next_run_at"].endswith("Z") and created["last_run_at"] == "" and created["last_job_id"] == ""
    assert set(created) >= {"queue", "created_at", "priority", "key", "timeout", "max_retries"}
    r = await api.client.post(f"{q(queue_name)}/schedules", json=body, headers=KEY)
    await assert_error(r, 409, "schedule_exists")
    await api.client.post(f"{q(queue_name)}/schedules", json={"name": "a-every", "every": 5}, headers=KEY)
    listed = await (await api.client.get(f"{q(queue_name)}/schedules")).get_json()
    assert [s["name"] for s in listed["schedules"]] == ["a-every", "nightly"]
    shown = await (await api.client.get(f"{q(queue_name)}/schedules/nightly")).get_json()
    assert shown == created
    r = await api.client.patch(f"{q(queue_name)}/schedules/nightly", json={"paused": True}, headers=KEY)
    paused = await r.get_json()
    assert r.status_code == 200 and paused["paused"] and paused["next_run_at"] == ""
    r = await api.client.patch(f"{q(queue_name)}/schedules/nightly", json={"every": 10}, headers=KEY)
    switched = await r.get_json()
    assert (switched["cron"], switched["every"], switched["paused"]) == (None, 10, True)
    r = await api.client.patch(f"{q(queue_name)}/schedules/nightly", json={"paused": False}, headers=KEY)
    assert (await r.get_json())["next_run_at"] != ""
    r = await api.client.delete(f"{q(queue_name)}/schedules/nightly", headers=KEY)
    assert await r.get_json() == {"status": "deleted", "schedule": "nightly"}
    r = await api.client.get(f"{q(queue_name)}/schedules/nightly")
    await assert_error(r, 404, "schedule_not_found")
    r = await api.client.delete(f"{q(queue_name)}/schedules/nightly", headers=KEY)
    await assert_error(r, 404, "schedule_not_found")
    r = await api.client.get(f"{q(queue_name)}/schedules/Not_A_Name")
    await assert_error(r, 404, "schedule_not_found")


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"name": "s"}, "cron and every"),
        ({"name": "s", "cron": "* * * * *", "every": 3}, "cron and every"),
        ({"name": "s", "cron": "not cron"}, "cron"),
        ({"name": "s", "cron": "* * * * *", "timezone": "Nowhere/Land"}, "timezone"),
        ({"name": "s", "every": 0}, "every must be at least 1"),
        ({"name": "s", "every": 1.5}, "every must be an integer"),
        ({"name": "Bad Name", "every": 1}, "name must match"),
        ({"name": "s", "every": 1, "timeout": 0}, "timeout must be at least 1"),
    ],
)
async def test_schedules_that_cannot_work_are_422(api, queue_name, body, mentions):
    await api.create(queue_name)
    r = await api.client.post(f"{q(queue_name)}/schedules", json=body, headers=KEY)
    await assert_error(r, 422, "validation_error", mentions)


async def test_schedules_of_an_unknown_queue_are_404(api, queue_name):
    r = await api.client.get(f"{q(queue_name)}/schedules")
    await assert_error(r, 404, "queue_not_found")


async def test_queue_limits_on_create_and_patch_are_shown_in_its_info(api, queue_name):
    info = await api.create(queue_name, concurrency=4, rate_limit={"max": 10, "per_ms": 1000})
    assert (info["concurrency"], info["key_concurrency"], info["rate_limit"]) == (4, 0, {"max": 10, "per_ms": 1000})
    r = await api.client.patch(q(queue_name), json={"key_concurrency": 1, "description": "d"}, headers=KEY)
    info = await r.get_json()
    assert (info["key_concurrency"], info["rate_limit"], info["description"]) == (1, {"max": 10, "per_ms": 1000}, "d")
    r = await api.client.patch(q(queue_name), json={"rate_limit": None, "concurrency": None}, headers=KEY)
    info = await r.get_json()
    assert (info["rate_limit"], info["concurrency"]) == (None, 4)  # null removes a limit, leaves a number alone
    for body, mentions in [
        ({"rate_limit": {"max": 0, "per_ms": 10}}, "rate_limit.max must be at least 1"),
        ({"rate_limit": {"max": 5}}, "rate_limit.per_ms is required"),
        ({"rate_limit": 5}, "rate_limit must be a JSON object"),
        ({"concurrency": -1}, "concurrency must be at least 0"),
    ]:
        r = await api.client.patch(q(queue_name), json=body, headers=KEY)
        await assert_error(r, 422, "validation_error", mentions)


async def test_job_options_are_echoed_and_bad_ones_name_the_field(api, queue_name):
    await api.create(queue_name)
    options = {"key": "acct-1", "unique_key": "u1", "unique_for": 60, "timeout": 30, "max_retries": 2, "tags": ["a"]}
    job = (await api.submit(queue_name, {"payload": {"n": 1}, **options}))["jobs"][0]
    assert {k: job[k] for k in options} == options and job["schedule"] == ""
    shown = await (await api.client.get(f"{q(queue_name)}/jobs/{job['id']}")).get_json()
    assert {k: shown[k] for k in options} == options
    again = await api.submit(queue_name, {"jobs": [{"payload": {"n": 2}, "unique_key": "u1"}]})
    assert (again["submitted"], again["skipped"], again["jobs"][0]["id"]) == (0, 1, job["id"])
    plain = (await api.submit(queue_name, {"payload": {"n": 3}}))["jobs"][0]
    assert (plain["key"], plain["tags"], plain["timeout"], plain["max_retries"]) == ("", [], None, None)
    bad: list[dict] = [{"payload": {}}] * 3 + [{"payload": {}, "timeout": 0}]
    r = await api.client.post(f"{q(queue_name)}/jobs", json={"jobs": bad}, headers=KEY)
    await assert_error(r, 422, "validation_error", "jobs[3].timeout must be at least 1")
    for body, mentions in [
        ({"payload": {}, "timeout": 7 * 86400 + 1}, "timeout must be at most 604800"),
        ({"payload": {}, "tags": ["x"] * 17}, "tags may hold at most 16 items"),
        ({"payload": {}, "tags": ["x" * 65]}, "tags[0] must be at most 64 characters long"),
        ({"payload": {}, "tags": [""]}, "tags[0] must be a non-empty string"),
        ({"payload": {}, "key": "k" * 257}, "key must be at most 256 characters long"),
        ({"payload": {}, "max_retries": 1001}, "max_retries must be at most 1000"),
        ({"payload": {}, "unique_for": 0}, "unique_for must be at least 1"),
    ]:
        r = await api.client.post(f"{q(queue_name)}/jobs", json=body, headers=KEY)
        await assert_error(r, 422, "validation_error", mentions)


async def test_release_promote_and_purge(api, queue_name):
    await api.create(queue_name)
    await api.submit(queue_name, {"jobs": [{"payload": {"i": i}} for i in range(3)]})
    (job,) = await api.claim(queue_name)
    url = f"{q(queue_name)}/jobs/{job['id']}"
    r = await api.client.post(url + "/release", json={"lease_id": job["lease_id"], "delay": 60}, headers=KEY)
    assert await r.get_json() == {"status": "scheduled", "job_id": job["id"]}
    r = await api.client.post(url + "/release", json={"lease_id": "stale-0"}, headers=KEY)
    await assert_error(r, 409, "not_claimed")
    r = await api.client.post(url + "/release", json={"delay": -1}, headers=KEY)
    await assert_error(r, 422, "validation_error", "delay must be at least 0")
    shown = await (await api.client.get(url)).get_json()
    assert shown["retries"] == 0 and shown["history"][-1]["event"] == "released"
    r = await api.client.post(url + "/promote", headers=KEY)
    assert await r.get_json() == {"status": "pending", "job_id": job["id"]}
    r = await api.client.post(url + "/promote", headers=KEY)
    await assert_error(r, 409, "invalid_state")
    r = await api.client.post(f"{q(queue_name)}/purge", json={"status": "pending"}, headers=KEY)
    assert await r.get_json() == {"status": "ok", "queue": queue_name, "purged": 3}
    assert (await api.info(queue_name))["pending"] == 0
    for body in ({"status": "claimed"}, {"status": "everything"}, {}):
        r = await api.client.post(f"{q(queue_name)}/purge", json=body, headers=KEY)
        await assert_error(r, 422, "validation_error", "status")
    r = await api.client.post(f"{q(queue_name)}-nope/purge", json={"status": "failed"}, headers=KEY)
    await assert_error(r, 404, "queue_not_found")


async def test_listing_by_tag_and_search(api, queue_name):
    await api.create(queue_name)
    await api.submit(queue_name, {"jobs": [{"payload": {"to": f"user{i}@x.io"}, "tags": ["mail"]} for i in range(3)]})
    await api.submit(queue_name, {"payload": {"other": True}})
    r = await api.client.get(f"{q(queue_name)}/jobs", query_string={"tag": "mail", "count": 2})
    page = await r.get_json()
    assert len(page["jobs"]) == 2 and page["has_more"] and page["cursor"]
    r = await api.client.get(f"{q(queue_name)}/jobs", query_string={"q": "USER1@"})
    assert [j["payload"]["to"] for j in (await r.get_json())["jobs"]] == ["user1@x.io"]
    r = await api.client.get(f"{q(queue_name)}/jobs", query_string={"tag": "mail", "status": "claimed"})
    assert (await r.get_json())["jobs"] == []
