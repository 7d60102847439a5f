"""The HTTP contract of workflows: dependencies, batches, progress and waiting for an outcome."""

from __future__ import annotations

import trio

from api.helpers import KEY, assert_error


async def test_depends_on_with_item_references_resolves_them_and_lists_dependents(api, queue_name):
    await api.create(queue_name)
    body = await api.submit(queue_name, {"jobs": [
        {"payload": {"step": "fetch"}},
        {"payload": {"step": "resize"}, "depends_on": ["#0"]},
        {"payload": {"step": "thumb"}, "depends_on": ["#0"]},
        {"payload": {"step": "publish"}, "depends_on": ["#1", "#2"], "on_dependency_failure": "run"},
    ]})  # fmt: skip
    fetch, resize, thumb, publish = body["jobs"]
    assert [j["status"] for j in body["jobs"]] == ["pending", "waiting", "waiting", "waiting"]
    assert publish["depends_on"] == [resize["id"], thumb["id"]]
    assert publish["on_dependency_failure"] == "run" and fetch["on_dependency_failure"] == ""
    shown = await (await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{fetch['id']}")).get_json()
    assert shown["dependents"] == sorted([resize["id"], thumb["id"]]) and shown["depends_on"] == []
    info = await api.info(queue_name)
    assert info["waiting"] == 3 and info["pending"] == 1
    listed = await (await api.client.get(f"/api/v1/queues/{queue_name}/jobs?status=waiting")).get_json()
    assert {j["id"] for j in listed["jobs"]} == {resize["id"], thumb["id"], publish["id"]}


async def test_bad_dependencies_get_422_naming_the_item(api, queue_name):
    await api.create(queue_name)
    url = f"/api/v1/queues/{queue_name}/jobs"
    ghost = "01900000-0000-7000-8000-000000000000"
    cases = [
        ({"jobs": [{"payload": {}}, {"payload": {}, "depends_on": [ghost]}]}, "jobs[1].depends_on[0]"),
        ({"jobs": [{"payload": {}, "depends_on": ["#0"]}]}, "jobs[0].depends_on[0]"),  # itself
        ({"jobs": [{"payload": {}, "depends_on": ["#1"]}, {"payload": {}}]}, "jobs[0].depends_on[0]"),  # forward
        ({"payload": {}, "depends_on": ["#0"]}, "depends_on[0]"),
        ({"payload": {}, "depends_on": [ghost]}, "depends_on[0]"),
        ({"payload": {}, "depends_on": ["not-an-id"]}, "depends_on[0]"),
        ({"payload": {}, "depends_on": [ghost] * 101}, "depends_on"),
        ({"payload": {}, "depends_on": [ghost], "on_dependency_failure": "ignore"}, "on_dependency_failure"),
    ]
    for body, where in cases:
        r = await api.client.post(url, json=body, headers=KEY)
        await assert_error(r, 422, "validation_error", where)
    assert (await api.info(queue_name))["pending"] == 0  # nothing stored by any of them


async def test_a_batch_answers_its_id_and_reports_its_counts_and_callback(api, queue_name):
    await api.create(queue_name, max_retries=0)
    body = await api.submit(queue_name, {
        "jobs": [{"payload": {"n": 1}}, {"payload": {"n": 2}}],
        "batch": {"callback": {"payload": {"report": "done", "batch": "ours wins"}, "priority": 7}},
    })  # fmt: skip
    batch_id = body["batch_id"]
    assert all(j["batch_id"] == batch_id for j in body["jobs"])
    url = f"/api/v1/queues/{queue_name}/batches/{batch_id}"
    state = await (await api.client.get(url)).get_json()
    assert state == {
        "id": batch_id, "total": 2, "pending": 2, "completed": 0, "failed": 0, "cancelled": 0, "finished": False,
        "callback_job_id": state["callback_job_id"], "created_at": state["created_at"], "finished_at": "",
    }  # fmt: skip
    jobs = await api.claim(queue_name, 2)
    await api.client.put(f"/api/v1/queues/{queue_name}/jobs/{jobs[0]['id']}/complete", json={}, headers=KEY)
    await api.client.put(f"/api/v1/queues/{queue_name}/jobs/{jobs[1]['id']}/fail", json={"error": "x"}, headers=KEY)
    state = await (await api.client.get(url)).get_json()
    assert state["finished"] and (state["completed"], state["failed"], state["pending"]) == (1, 1, 0)
    callback = await (await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{state['callback_job_id']}")).get_json()
    assert callback["priority"] == 7
    assert callback["payload"] == {
        "report": "done", "batch": {"id": batch_id, "total": 2, "completed": 1, "failed": 1, "cancelled": 0},
    }  # fmt: skip


async def test_batch_errors(api, queue_name):
    await api.create(queue_name)
    url = f"/api/v1/queues/{queue_name}"
    r = await api.client.post(url + "/jobs", json={"payload": {}, "batch": {"callback": {"queue": "nope-nope"}}},
                              headers=KEY)  # fmt: skip
    await assert_error(r, 404, "queue_not_found", "batch.callback.queue")
    r = await api.client.post(url + "/jobs", json={"payload": {}, "batch": {"callback": {"payload": []}}}, headers=KEY)
    await assert_error(r, 422, "validation_error", "batch.callback.payload")
    r = await api.client.get(url + "/batches/01900000-0000-7000-8000-000000000000")
    await assert_error(r, 404, "batch_not_found")
    r = await api.client.get(url + "/batches/..")
    assert r.status_code == 404


async def test_progress_contract(api, queue_name):
    await api.create(queue_name)
    await api.submit(queue_name, {"payload": {"n": 1}})
    (job,) = await api.claim(queue_name)
    url = f"/api/v1/queues/{queue_name}/jobs/{job['id']}"
    assert job["progress"] is None
    for value in (12.5, {"done": 5, "of": 10}):
        r = await api.client.put(url + "/progress", json={"lease_id": job["lease_id"], "progress": value}, headers=KEY)
        assert r.status_code == 200, await r.get_data()
        assert (await (await api.client.get(url)).get_json())["progress"] == value
    for bad in ("half", True, [1], None):
        r = await api.client.put(url + "/progress", json={"lease_id": job["lease_id"], "progress": bad}, headers=KEY)
        await assert_error(r, 422, "validation_error", "progress")
    r = await api.client.put(url + "/progress", json={"progress": {"x": "y" * 70_000}}, headers=KEY)
    await assert_error(r, 413, "too_large", "progress")
    r = await api.client.put(url + "/progress", json={"lease_id": "stale", "progress": 1}, headers=KEY)
    await assert_error(r, 409, "lease_lost")
    r = await api.client.put(url + "/progress", json={"progress": 1})
    await assert_error(r, 401)
    await api.client.put(url + "/complete", json={"lease_id": job["lease_id"]}, headers=KEY)
    r = await api.client.put(url + "/progress", json={"lease_id": job["lease_id"], "progress": 1}, headers=KEY)
    await assert_error(r, 409, "not_claimed")


async def test_wait_ms_answers_when_the_job_finishes(api, queue_name):
    await api.create(queue_name)
    (submitted,) = (await api.submit(queue_name, {"payload": {"n": 1}}))["jobs"]
    url = f"/api/v1/queues/{queue_name}/jobs/{submitted['id']}"
    answered: list[tuple[float, dict]] = []

    async def waiter() -> None:
        started = trio.current_time()
        r = await api.client.get(url + "?wait_ms=20000")
        answered.append((trio.current_time() - started, await r.get_json()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        with trio.fail_after(20):  # waiting for the outcome before it comes, however long the request took
            while api.hub.outcomes.waiting == 0:
                await trio.sleep(0.01)
        assert not answered
        (job,) = await api.claim(queue_name)
        await api.client.put(url + "/complete", json={"lease_id": job["lease_id"], "result": {"ok": 1}}, headers=KEY)
    (took, body) = answered[0]
    assert body["status"] == "completed" and body["result"] == {"ok": 1}
    assert took < 10  # woken by the completion, not by its 20 s
    assert api.hub.outcomes.waiting == 0


async def test_wait_ms_times_out_with_the_current_state_and_is_bounded(api, queue_name):
    await api.create(queue_name)
    (submitted,) = (await api.submit(queue_name, {"payload": {"n": 1}}))["jobs"]
    url = f"/api/v1/queues/{queue_name}/jobs/{submitted['id']}"
    r = await api.client.get(url + "?wait_ms=200")
    assert r.status_code == 200 and (await r.get_json())["status"] == "pending"
    for bad in ("60001", "-1", "soon"):
        await assert_error(await api.client.get(url + f"?wait_ms={bad}"), 422, "validation_error", "wait_ms")
    missing = f"/api/v1/queues/{queue_name}/jobs/01900000-0000-7000-8000-000000000000?wait_ms=1000"
    await assert_error(await api.client.get(missing), 404, "job_not_found")


async def test_three_hundred_waiters_are_each_answered_by_their_own_jobs_outcome(api, queue_name):
    await api.create(queue_name)
    body = await api.submit(queue_name, {"jobs": [{"payload": {"n": i}} for i in range(300)]})
    ids = [j["id"] for j in body["jobs"]]
    answers: dict[str, dict] = {}

    async def waiter(job_id: str) -> None:
        r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{job_id}?wait_ms=30000")
        answers[job_id] = await r.get_json()

    async with trio.open_nursery() as nursery:
        for job_id in ids:
            nursery.start_soon(waiter, job_id)
        with trio.fail_after(20):
            while api.hub.outcomes.waiting < 300:
                await trio.sleep(0.05)
        claimed = await api.claim(queue_name, 100)
        while len(claimed) < 300:
            claimed += await api.claim(queue_name, 100)
        for i, job in enumerate(claimed):
            outcome = {"complete": [{"id": job["id"], "lease_id": job["lease_id"], "result": {"i": i}}]}
            if i % 2:
                outcome = {"fail": [{"id": job["id"], "lease_id": job["lease_id"], "error": "odd", "retry": False}]}
            await api.client.post(f"/api/v1/queues/{queue_name}/jobs/ack", json=outcome, headers=KEY)
    assert len(answers) == 300
    by_id = {j["id"]: i for i, j in enumerate(claimed)}
    for job_id, answer in answers.items():
        assert answer["id"] == job_id
        assert answer["status"] == ("failed" if by_id[job_id] % 2 else "completed")


class _CountingEngine:
    """The real engine, counting the outcome waiters' store reads in flight (watch_job, get_job)."""

    def __init__(self, engine) -> None:
        self._engine, self.now, self.most = engine, 0, 0

    def __getattr__(self, name: str):
        real = getattr(self._engine, name)
        if name not in ("watch_job", "get_job"):
            return real

        async def counted(*args):
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                return await real(*args)
            finally:
                self.now -= 1

        return counted


async def test_a_burst_of_waiters_sends_a_bounded_number_of_store_reads_at_once(api, queue_name):
    """Waiters arriving together queue for a turn to read, so no read waits behind thousands of others past
    store_timeout (10,000 at once got 503s); every one of them still gets its own job's outcome."""
    from starq.server.outcome_waits import READS_IN_FLIGHT

    waiters = 4 * READS_IN_FLIGHT
    counting = _CountingEngine(api.hub.outcomes._engine)
    api.hub.outcomes._engine = counting
    await api.create(queue_name)
    body = await api.submit(queue_name, {"jobs": [{"payload": {"n": i}} for i in range(waiters)]})
    ids = [j["id"] for j in body["jobs"]]
    answers: dict[str, dict] = {}

    async def waiter(job_id: str) -> None:
        r = await api.client.get(f"/api/v1/queues/{queue_name}/jobs/{job_id}?wait_ms=30000")
        answers[job_id] = await r.get_json()

    async with trio.open_nursery() as nursery:
        for job_id in ids:
            nursery.start_soon(waiter, job_id)
        with trio.fail_after(20):
            while api.hub.outcomes.waiting < waiters:
                await trio.sleep(0.05)
        r = await api.client.post(f"/api/v1/queues/{queue_name}/jobs/bulk", json={"action": "cancel", "ids": ids},
                                  headers=KEY)  # fmt: skip
        assert r.status_code == 200
    assert {job_id: a["status"] for job_id, a in answers.items()} == dict.fromkeys(ids, "cancelled")
    assert 1 <= counting.most <= READS_IN_FLIGHT, counting.most
