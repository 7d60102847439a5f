"""A job's history against protocol.HISTORY_EVENT_STATUS: the status each event says (or, naming none, means) is the
status the job is in right after it. The dashboard's job page shows that status from the same declaration."""

from __future__ import annotations

from engine.helpers import make_queue, new_job, now_ms, submit, submit_jobs
from starq.worker_kit.protocol import HISTORY_EVENT_STATUS


def status_after(event: dict) -> str | None:
    """The status an event left its job in, read as the dashboard reads it (None: it changed none)."""
    if event.get("status"):
        return event["status"]
    if event.get("run_at"):
        return "scheduled"
    return HISTORY_EVENT_STATUS.get(event["event"])


async def check(engine, queue: str, job_id: str, event: str, seen: set[str]) -> None:
    """The job's last event is ``event``, and it means the status the job has now."""
    job = await engine.get_job(queue, job_id)
    last = job.history[-1]
    assert last["event"] == event, job.history
    assert status_after(last) == job.status, (last, job.status)
    seen.add(event)


async def claim_one(engine, queue: str):
    (job,) = await engine.claim(queue, 1, "w1")
    return job


async def test_every_history_event_means_the_status_its_job_is_left_in(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=0)
    seen: set[str] = set()
    # submitted (pending), claimed, completed: the history the record stands for without writing it out.
    (job,) = await submit(engine, queue_name, {"n": 1})
    await check(engine, queue_name, job.id, "submitted", seen)
    claimed = await claim_one(engine, queue_name)
    await check(engine, queue_name, job.id, "claimed", seen)
    await engine.complete(queue_name, job.id, claimed.lease_id)
    await check(engine, queue_name, job.id, "completed", seen)

    # released, now and after a delay; extended (no status of its own: the job stays claimed).
    (job,) = await submit(engine, queue_name, {"n": 2})
    claimed = await claim_one(engine, queue_name)
    await engine.extend(queue_name, job.id, claimed.lease_id)
    last = (await engine.get_job(queue_name, job.id)).history[-1]
    assert last["event"] == "extended" and status_after(last) is None
    await engine.release(queue_name, job.id, claimed.lease_id)
    await check(engine, queue_name, job.id, "released", seen)
    claimed = await claim_one(engine, queue_name)
    await engine.release(queue_name, job.id, claimed.lease_id, delay=3600)
    await check(engine, queue_name, job.id, "released", seen)

    # promoted (the scheduled job runs now), failed (dead-lettered), retried by hand, cancelled.
    await engine.promote(queue_name, job.id)
    await check(engine, queue_name, job.id, "promoted", seen)
    claimed = await claim_one(engine, queue_name)
    await engine.fail(queue_name, job.id, claimed.lease_id, "boom")
    await check(engine, queue_name, job.id, "failed", seen)
    await engine.retry(queue_name, job.id)
    await check(engine, queue_name, job.id, "retried", seen)
    await engine.cancel(queue_name, job.id)
    await check(engine, queue_name, job.id, "cancelled", seen)

    # submitted with a delay (scheduled), submitted behind a dependency (waiting), then pending once it completed.
    (later,) = await submit(engine, queue_name, {"n": 3}, run_at_ms=now_ms() + 3_600_000)
    await check(engine, queue_name, later.id, "submitted", seen)
    first, second = await submit_jobs(engine, queue_name, [new_job({"n": 4}), new_job({"n": 5}, depends_on=("#0",))])
    await check(engine, queue_name, second.id, "submitted", seen)
    claimed = await claim_one(engine, queue_name)
    assert claimed.id == first.id
    await engine.complete(queue_name, first.id, claimed.lease_id)
    await check(engine, queue_name, second.id, "pending", seen)

    # Every declared event was met: the declaration names none the engine no longer writes.
    assert set(HISTORY_EVENT_STATUS) <= seen
