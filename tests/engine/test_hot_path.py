"""What the hot paths skip, and that skipping never loses work: the "ready" notification goes out only while a
claim waits on the queue, a claim looks at the schedule only when a job may be due, and the parsed settings a
call keeps between calls are read again as soon as they change."""

from __future__ import annotations

import trio

from engine.helpers import make_queue, new_job, now_ms, published_during, submit
from starq.server.engine.models import new_job_id

PARK_MS = 5_000


async def ready_notifications(engine, raw, queue: str, action) -> list[str]:
    """The "ready" notifications for ``queue`` that ``action`` publishes."""
    return [
        message
        for channel, message in await published_during(engine, raw, action)
        if channel == "ready" and message == queue
    ]


async def test_a_submit_notifies_only_while_a_claim_waits(engine, raw, queue_name):
    await make_queue(engine, queue_name)
    assert await ready_notifications(engine, raw, queue_name, lambda: submit(engine, queue_name, {"n": 1})) == []
    # A claim that will wait and finds nothing (the queue's one job taken first) marks the queue as waited on.
    assert len((await engine.claim(queue_name, 1)).jobs) == 1
    assert (await engine.claim(queue_name, 1, park_ms=PARK_MS)).jobs == []
    assert await ready_notifications(engine, raw, queue_name, lambda: submit(engine, queue_name, {"n": 2})) == [
        queue_name
    ]


async def test_a_claim_that_will_not_wait_marks_nothing(engine, raw, queue_name):
    await make_queue(engine, queue_name)
    assert (await engine.claim(queue_name, 1)).jobs == []
    assert await ready_notifications(engine, raw, queue_name, lambda: submit(engine, queue_name, {"n": 1})) == []


async def test_a_paused_queue_waited_on_is_woken_by_resume(engine, raw, queue_name):
    await make_queue(engine, queue_name)
    await engine.update_queue(queue_name, paused=True)
    await submit(engine, queue_name, {"n": 1})
    assert (await engine.claim(queue_name, 1, park_ms=PARK_MS)).jobs == []

    async def resume() -> None:
        await engine.update_queue(queue_name, paused=False)

    assert await ready_notifications(engine, raw, queue_name, resume) == [queue_name]


async def test_a_delayed_job_is_claimable_once_due_without_maintenance(engine, queue_name):
    await make_queue(engine, queue_name)
    # Nothing scheduled: claims skip the schedule. Then a job due in 300 ms, and one due later that must stay.
    assert (await engine.claim(queue_name, 1)).jobs == []
    due = now_ms() + 300
    soon = new_job({"n": 1}, run_at_ms=due)
    later = new_job({"n": 2}, run_at_ms=now_ms() + 60_000)
    ids = [new_job_id(), new_job_id()]
    await engine.submit(queue_name, [later, soon], [ids[1], ids[0]])
    # Not due yet, unless this busy machine took 300 ms to get here (the store claimed before the answer came).
    assert (await engine.claim(queue_name, 1)).jobs == [] or now_ms() >= due
    await trio.sleep(max(0, due - now_ms()) / 1000 + 0.05)
    claimed = (await engine.claim(queue_name, 5)).jobs
    assert [job.id for job in claimed] == [ids[0]]
    assert (await engine.get_job(queue_name, ids[1])).status == "scheduled"


async def test_a_job_taken_off_the_schedule_does_not_hide_an_earlier_one(engine, queue_name):
    await make_queue(engine, queue_name)
    first, second = new_job_id(), new_job_id()
    await engine.submit(queue_name, [new_job({"n": 1}, run_at_ms=now_ms() + 200)], [first])
    await engine.cancel(queue_name, first)
    await engine.submit(queue_name, [new_job({"n": 2}, run_at_ms=now_ms() + 300)], [second])
    await trio.sleep(0.4)
    assert [job.id for job in (await engine.claim(queue_name, 5)).jobs] == [second]


async def test_changed_settings_apply_at_the_next_call(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=0)
    (sub,) = await submit(engine, queue_name, {"n": 1})
    job = (await engine.claim(queue_name, 1)).jobs[0]
    await engine.update_queue(queue_name, max_retries=3, retry_delay=0)
    assert await engine.fail(queue_name, job.id, job.lease_id, "once") == ("pending", 1)


async def test_a_queue_made_again_under_its_name_has_its_new_settings(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=5, retry_delay=0)
    await submit(engine, queue_name, {"n": 1})
    job = (await engine.claim(queue_name, 1)).jobs[0]
    assert await engine.fail(queue_name, job.id, job.lease_id, "once") == ("pending", 1)
    await engine.delete_queue(queue_name)
    await make_queue(engine, queue_name, max_retries=0)
    await submit(engine, queue_name, {"n": 2})
    job = (await engine.claim(queue_name, 1)).jobs[0]
    assert await engine.fail(queue_name, job.id, job.lease_id, "once") == ("failed", 0)
