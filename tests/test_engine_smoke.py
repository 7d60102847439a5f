from starq.server.engine.models import NewJob, new_job_id


async def test_roundtrip(engine, queue_name):
    await engine.create_queue(queue_name, {})
    subs = await engine.submit(queue_name, [NewJob(payload='{"a":1}')], [new_job_id()])
    assert subs[0].status == "pending"
    jobs = await engine.claim(queue_name, 5, "w1")
    assert len(jobs) == 1 and jobs[0].status == "claimed"
    assert await engine.complete(queue_name, jobs[0].id, jobs[0].lease_id, '{"ok":true}') == "completed"
    info = await engine.queue_info(queue_name)
    assert info.counts["completed"] == 1


async def test_history(engine, queue_name):
    await engine.create_queue(queue_name, {"retry_delay": 0})
    (sub,) = await engine.submit(queue_name, [NewJob(payload='{"a":1}')], [new_job_id()])
    (job,) = await engine.claim(queue_name, 1, "w1")
    await engine.fail(queue_name, job.id, job.lease_id, "boom")
    (job2,) = await engine.claim(queue_name, 1, "w2")
    await engine.complete(queue_name, job2.id, job2.lease_id)
    got = await engine.get_job(queue_name, sub.id)
    assert [h["event"] for h in got.history] == ["submitted", "claimed", "failed", "claimed", "completed"]
    assert got.history[2]["error"] == "boom" and got.history[3]["worker"] == "w2"
