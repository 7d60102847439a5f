"""Submitting: single and batch (atomic), dedupe, ids chosen by the caller make a retried submit idempotent."""

from __future__ import annotations

import pytest

from engine.helpers import make_queue, new_job, payload_of, submit, submit_jobs
from starq.server.engine.models import NewJob, new_job_id
from starq.worker_kit.errors import QueueNotFound


async def test_submit_single_is_pending_and_counted(engine, queue_name):
    await make_queue(engine, queue_name)
    (sub,) = await submit(engine, queue_name, {"n": 1})
    assert sub.status == "pending" and not sub.skipped and sub.created_at.endswith("Z")
    job = await engine.get_job(queue_name, sub.id)
    assert job.status == "pending" and payload_of(job) == {"n": 1} and job.retries == 0
    assert job.result is None and job.claimed_at == "" and job.completed_at == ""
    assert (await engine.queue_info(queue_name)).counts["pending"] == 1


async def test_batch_is_stored_in_order(engine, queue_name):
    await make_queue(engine, queue_name)
    subs = await submit(engine, queue_name, *({"n": i} for i in range(50)))
    assert [s.status for s in subs] == ["pending"] * 50
    claimed = await engine.claim(queue_name, 100)
    assert [payload_of(j) for j in claimed] == [{"n": i} for i in range(50)]


async def test_batch_to_missing_queue_stores_nothing(engine, queue_name):
    with pytest.raises(QueueNotFound):
        await submit(engine, queue_name, {"a": 1}, {"a": 2})
    await make_queue(engine, queue_name)
    assert (await engine.queue_info(queue_name)).counts["pending"] == 0


async def test_resubmit_with_same_ids_is_idempotent(engine, queue_name):
    """A submit retried after a timeout (same ids) stores nothing twice."""
    await make_queue(engine, queue_name)
    jobs = [new_job({"i": i}) for i in range(3)]
    ids = [new_job_id() for _ in jobs]
    first = await engine.submit(queue_name, jobs, ids)
    again = await engine.submit(queue_name, jobs, ids)
    assert [s.id for s in again] == [s.id for s in first] and all(s.skipped for s in again)
    assert (await engine.queue_info(queue_name)).counts["pending"] == 3


async def test_dedupe_skips_known_payload_with_canonical_json(engine, queue_name):
    await make_queue(engine, queue_name, dedupe=True)
    (a,) = await submit(engine, queue_name, {"x": 1, "y": [1, 2]})
    # Same object, different key order and spacing: the canonical JSON hash matches.
    job = NewJob(payload='{ "y": [1, 2],   "x": 1 }', dedupe_hash=new_job({"y": [1, 2], "x": 1}).dedupe_hash)
    (b,) = await submit_jobs(engine, queue_name, [job])
    assert b.skipped and b.id == a.id
    (c,) = await submit(engine, queue_name, {"x": 2, "y": [1, 2]})
    assert not c.skipped
    assert (await engine.queue_info(queue_name)).counts["pending"] == 2


async def test_dedupe_within_one_batch(engine, queue_name):
    await make_queue(engine, queue_name, dedupe=True)
    subs = await submit(engine, queue_name, {"k": 1}, {"k": 2}, {"k": 1}, {"k": 2}, {"k": 3})
    assert [s.skipped for s in subs] == [False, False, True, True, False]
    assert subs[2].id == subs[0].id and subs[3].id == subs[1].id
    assert (await engine.queue_info(queue_name)).counts["pending"] == 3


async def test_dedupe_applies_while_claimed_and_completed(engine, queue_name):
    """The queue still knows a claimed or completed job, so its payload is still a duplicate."""
    await make_queue(engine, queue_name, dedupe=True)
    (a,) = await submit(engine, queue_name, {"k": 1})
    (job,) = await engine.claim(queue_name, 1)
    assert (await submit(engine, queue_name, {"k": 1}))[0].skipped
    await engine.complete(queue_name, job.id, job.lease_id)
    assert (await submit(engine, queue_name, {"k": 1}))[0].skipped


async def test_dedupe_forgets_dead_lettered_and_cancelled_jobs(engine, queue_name):
    await make_queue(engine, queue_name, dedupe=True, max_retries=0)
    (a,) = await submit(engine, queue_name, {"k": 1})
    (job,) = await engine.claim(queue_name, 1)
    assert await engine.fail(queue_name, job.id, job.lease_id, "boom") == ("failed", 0)
    (b,) = await submit(engine, queue_name, {"k": 1})
    assert not b.skipped and b.id != a.id
    await engine.cancel(queue_name, b.id)
    (c,) = await submit(engine, queue_name, {"k": 1})
    assert not c.skipped and c.id not in (a.id, b.id)


async def test_without_dedupe_duplicates_are_kept(engine, queue_name):
    await make_queue(engine, queue_name)
    subs = await submit(engine, queue_name, {"k": 1}, {"k": 1})
    assert not any(s.skipped for s in subs) and subs[0].id != subs[1].id


async def test_dedupe_submit_race_stores_one(engine, queue_name):
    """Concurrent submits of the same payload: exactly one is stored (no check-then-act race)."""
    import trio

    await make_queue(engine, queue_name, dedupe=True)
    results = []

    async def one():
        results.extend(await submit(engine, queue_name, {"same": True}))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(one)
    assert sum(not r.skipped for r in results) == 1
    assert len({r.id for r in results}) == 1
    assert (await engine.queue_info(queue_name)).counts["pending"] == 1
