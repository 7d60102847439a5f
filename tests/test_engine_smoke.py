from starq.server.engine.models import NewJob, QueueSettings, new_job_id


async def test_roundtrip(engine, queue_name):
    await engine.create_queue(queue_name, QueueSettings())
    subs = await engine.submit(queue_name, [NewJob(payload='{"a":1}')], [new_job_id()])
    assert subs[0].status == "pending"
    jobs = await engine.claim(queue_name, 5, "w1")
    assert len(jobs) == 1 and jobs[0].status == "claimed"
    assert await engine.complete(queue_name, jobs[0].id, jobs[0].lease_id, '{"ok":true}') == "completed"
    info = await engine.queue_info(queue_name)
    assert info.counts["completed"] == 1
