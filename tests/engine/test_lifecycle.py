"""Cancel, retry, retry_dead, listing, retention, delete_queue and bounded memory."""

from __future__ import annotations

import random

import pytest
import trio

from engine.helpers import (
    all_jobs,
    assert_counts_true,
    drain,
    make_queue,
    make_unticked_queue,
    now_ms,
    submit,
)
from starq.server.engine.models import STATUSES
from starq.worker_kit.errors import InvalidState, JobCancelled, QueueExists, QueueNotFound


def keys_of(queue: str) -> str:
    return f"starq:{{{queue}}}*"


# Every status counted 0, for comparing counts where only a few are not.
NONE = dict.fromkeys(STATUSES, 0)


async def stream_lengths(raw, queue: str) -> int:
    return sum([await raw.xlen(f"starq:{{{queue}}}:s:{p}") for p in range(10)])


async def test_cancel_pending_and_scheduled(engine, queue_name, raw):
    await make_queue(engine, queue_name)
    (p,) = await submit(engine, queue_name, {"a": 1})
    (s,) = await submit(engine, queue_name, {"a": 2}, run_at_ms=now_ms() + 60_000)
    assert await engine.cancel(queue_name, p.id) == "cancelled"
    assert await engine.cancel(queue_name, s.id) == "cancelled"
    for sub in (p, s):
        job = await engine.get_job(queue_name, sub.id)
        assert job.status == "cancelled" and job.completed_at != ""
    assert await engine.claim(queue_name, 10) == []
    assert await stream_lengths(raw, queue_name) == 0
    assert await raw.zcard(f"starq:{{{queue_name}}}:sched") == 0
    truth = await assert_counts_true(engine, queue_name)
    assert truth["cancelled"] == 2


async def test_cancel_stops_a_claimed_job_and_refuses_finished_ones(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1}, {"a": 2})
    a, b = await engine.claim(queue_name, 2, "w")
    assert await engine.cancel(queue_name, a.id) == "cancelled"
    for report in (engine.complete, engine.fail, engine.extend):
        with pytest.raises(JobCancelled):
            await report(queue_name, a.id, a.lease_id)
    await engine.complete(queue_name, b.id, b.lease_id)
    with pytest.raises(InvalidState):
        await engine.cancel(queue_name, b.id)
    assert (await engine.get_job(queue_name, a.id)).status == "cancelled"
    assert await engine.workers(queue_name) == [] or (await engine.workers(queue_name))[0].jobs_in_hand == 0
    await assert_counts_true(engine, queue_name)


async def test_retry_one_dead_or_cancelled_job(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=2)
    (a,) = await submit(engine, queue_name, {"a": 1})
    (job,) = await engine.claim(queue_name, 1)
    await engine.fail(queue_name, job.id, job.lease_id, "x", retry=False)
    assert await engine.retry(queue_name, a.id) == "pending"
    back = await engine.get_job(queue_name, a.id)
    assert back.status == "pending" and back.retries == 0 and back.completed_at == ""
    (b,) = await submit(engine, queue_name, {"b": 1})
    await engine.cancel(queue_name, b.id)
    assert await engine.retry(queue_name, b.id) == "pending"
    assert {j.id for j in await drain(engine, queue_name)} == {a.id, b.id}
    await assert_counts_true(engine, queue_name)


async def test_retry_refuses_live_jobs(engine, queue_name):
    await make_queue(engine, queue_name)
    (a,) = await submit(engine, queue_name, {"a": 1})
    with pytest.raises(InvalidState):
        await engine.retry(queue_name, a.id)
    (job,) = await engine.claim(queue_name, 1)
    with pytest.raises(InvalidState):
        await engine.retry(queue_name, a.id)
    await engine.complete(queue_name, job.id, job.lease_id)
    with pytest.raises(InvalidState):
        await engine.retry(queue_name, a.id)


async def test_retried_dead_job_is_not_removed_by_its_old_retention(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name, retention=1)
    (a,) = await submit(engine, queue_name, {"a": 1})
    (job,) = await engine.claim(queue_name, 1)
    await engine.fail(queue_name, job.id, job.lease_id, "x", retry=False)
    await engine.retry(queue_name, a.id)
    await trio.sleep(1.1)
    assert (await engine.tick(queue_name)).expired == 0
    assert (await engine.get_job(queue_name, a.id)).status == "pending"


async def test_retry_dead_revives_every_dead_job_only(engine, queue_name):
    await make_queue(engine, queue_name)
    subs = await submit(engine, queue_name, *({"i": i} for i in range(6)))
    jobs = await engine.claim(queue_name, 4)
    for job in jobs[:3]:
        await engine.fail(queue_name, job.id, job.lease_id, "x", retry=False)
    await engine.complete(queue_name, jobs[3].id, jobs[3].lease_id)
    await engine.cancel(queue_name, subs[5].id)
    assert await engine.retry_dead(queue_name) == 3
    assert await engine.retry_dead(queue_name) == 0
    truth = await assert_counts_true(engine, queue_name)
    assert truth == {**NONE, "pending": 4, "completed": 1, "cancelled": 1}


async def test_list_jobs_newest_first_with_cursor_paging(engine, queue_name):
    await make_queue(engine, queue_name)
    subs = []
    for i in range(23):
        subs += await submit(engine, queue_name, {"i": i})
    newest_first = [s.id for s in reversed(subs)]
    seen, cursor, pages = [], "", []
    while True:
        page = await engine.list_jobs(queue_name, "", 5, cursor)
        pages.append(len(page.jobs))
        seen += [j.id for j in page.jobs]
        if not page.has_more:
            break
        cursor = page.cursor
    assert seen == newest_first
    assert pages == [5, 5, 5, 5, 3]


async def test_list_jobs_pages_newest_first_across_statuses(engine, queue_name):
    # Pending, claimed (the leases zset, in expiry order) and completed jobs interleaved by id: each page is
    # merged from every status's index.
    await make_queue(engine, queue_name)
    subs = []
    for i in range(23):
        subs += await submit(engine, queue_name, {"i": i})
    claimed = await engine.claim(queue_name, 12)
    for job in claimed[::2]:
        await engine.complete(queue_name, job.id, job.lease_id)
    await engine.extend(queue_name, claimed[1].id, claimed[1].lease_id, 3600)  # leases out of id order
    seen, cursor, statuses = [], "", set()
    while True:
        page = await engine.list_jobs(queue_name, "", 5, cursor)
        seen += [j.id for j in page.jobs]
        statuses |= {j.status for j in page.jobs}
        if not page.has_more:
            break
        cursor = page.cursor
    assert seen == [s.id for s in reversed(subs)]
    assert statuses == {"pending", "claimed", "completed"}


async def test_list_jobs_filters_before_paging(engine, queue_name):
    """Every page but the last is full, however the wanted status is spread among the others."""
    await make_queue(engine, queue_name)
    subs = await submit(engine, queue_name, *({"i": i} for i in range(40)))
    # Cancel every third job so the cancelled ones are spread thinly among pending ones.
    cancelled = [s.id for s in subs[::3]]
    for job_id in cancelled:
        await engine.cancel(queue_name, job_id)
    seen, cursor, sizes = [], "", []
    while True:
        page = await engine.list_jobs(queue_name, "cancelled", 4, cursor)
        assert all(j.status == "cancelled" for j in page.jobs)
        sizes.append(len(page.jobs))
        seen += [j.id for j in page.jobs]
        if not page.has_more:
            break
        cursor = page.cursor
    assert seen == list(reversed(cancelled))
    assert sizes[:-1] == [4] * (len(sizes) - 1) and sizes[-1] > 0
    pending = await engine.list_jobs(queue_name, "pending", 50, "")
    assert not pending.has_more and len(pending.jobs) == 40 - len(cancelled)


async def test_list_jobs_of_each_status(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=30)
    subs = await submit(engine, queue_name, *({"i": i} for i in range(6)))
    await submit(engine, queue_name, {"later": 1}, run_at_ms=now_ms() + 60_000)
    a, b, c = await engine.claim(queue_name, 3)
    await engine.complete(queue_name, a.id, a.lease_id)
    await engine.fail(queue_name, b.id, b.lease_id, retry=False)
    await engine.cancel(queue_name, subs[5].id)
    truth = await assert_counts_true(engine, queue_name)
    assert truth == {**NONE, "pending": 2, "scheduled": 1, "claimed": 1, "completed": 1, "failed": 1, "cancelled": 1}


async def test_counts_equal_the_truth_after_random_operations(engine, queue_name, raw):
    """Random sequences of every transition: the O(1) counts always match a full listing."""
    rng = random.Random(20261129)
    await make_queue(engine, queue_name, max_retries=2, retry_delay=0, dedupe=True)
    held = []
    for step in range(250):
        op = rng.choice(
            [
                "submit",
                "submit",
                "claim",
                "complete",
                "fail",
                "fail_dead",
                "expire",
                "cancel",
                "retry",
                "retry_dead",
                "release",
                "schedule",
            ]
        )
        if op == "submit":
            await submit(engine, queue_name, *({"k": rng.randrange(40)} for _ in range(rng.randrange(1, 4))))
        elif op == "schedule":
            await submit(engine, queue_name, {"s": rng.randrange(10)}, run_at_ms=now_ms() + rng.choice([0, 50, 60_000]))
        elif op == "claim":
            held += await engine.claim(queue_name, rng.randrange(1, 4), rng.choice(["w1", "w2", ""]))
        elif op in ("complete", "fail", "fail_dead", "release", "expire") and held:
            job = held.pop(rng.randrange(len(held)))
            try:
                if op == "complete":
                    await engine.complete(queue_name, job.id, job.lease_id, "{}")
                elif op == "fail":
                    await engine.fail(queue_name, job.id, job.lease_id, "e")
                elif op == "fail_dead":
                    await engine.fail(queue_name, job.id, job.lease_id, "e", retry=False)
                elif op == "release":
                    await engine.release_undelivered(queue_name, [job])
                else:
                    await engine.extend(queue_name, job.id, job.lease_id, 0.001)
                    await trio.sleep(0.005)
                    await engine.tick(queue_name)
            except Exception as exc:  # a job already reclaimed by a tick has a stale lease
                assert type(exc).__name__ in ("LeaseLost", "NotClaimed", "JobCancelled"), exc
        elif op in ("cancel", "retry"):
            jobs = await all_jobs(engine, queue_name)
            if jobs:
                job = rng.choice(jobs)
                try:
                    await (engine.cancel if op == "cancel" else engine.retry)(queue_name, job.id)
                except InvalidState:
                    pass
        elif op == "retry_dead":
            await engine.retry_dead(queue_name)
        if step % 25 == 0:
            await assert_counts_true(engine, queue_name)
    truth = await assert_counts_true(engine, queue_name)
    assert await stream_lengths(raw, queue_name) == truth["pending"]


async def test_retention_expires_finished_records(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name, retention=1, dedupe=True, max_retries=0)
    subs = await submit(engine, queue_name, {"i": 0}, {"i": 1}, {"i": 2}, {"i": 3})
    a, b = await engine.claim(queue_name, 2)
    await engine.complete(queue_name, a.id, a.lease_id)
    await engine.fail(queue_name, b.id, b.lease_id, "x")
    await engine.cancel(queue_name, subs[2].id)
    assert (await engine.tick(queue_name)).expired == 0
    await trio.sleep(1.1)
    assert (await engine.tick(queue_name)).expired == 3
    truth = await assert_counts_true(engine, queue_name)
    assert truth == {**NONE, "pending": 1}
    from starq.worker_kit.errors import JobNotFound

    for gone in (a.id, b.id, subs[2].id):
        with pytest.raises(JobNotFound):
            await engine.get_job(queue_name, gone)
        assert not await raw.exists([f"starq:{{{queue_name}}}:job:{gone}", f"starq:{{{queue_name}}}:hist:{gone}"])
    assert await raw.zcard(f"starq:{{{queue_name}}}:expiry") == 0
    # The completed job's payload is forgotten by dedupe once its record is gone.
    (again,) = await submit(engine, queue_name, {"i": 0})
    assert not again.skipped
    assert (await engine.get_job(queue_name, subs[3].id)).status == "pending"


async def test_streams_hold_only_pending_jobs(engine, queue_name, raw):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=1)
    await submit(engine, queue_name, *({"i": i} for i in range(20)), priority=3)
    await submit(engine, queue_name, *({"i": i} for i in range(10)), priority=7)
    assert await stream_lengths(raw, queue_name) == 30
    jobs = await engine.claim(queue_name, 25)
    assert await stream_lengths(raw, queue_name) == 5
    for job in jobs[:10]:
        await engine.complete(queue_name, job.id, job.lease_id)
    for job in jobs[10:20]:
        await engine.fail(queue_name, job.id, job.lease_id)  # back to pending: in a stream again
    assert await stream_lengths(raw, queue_name) == 15
    await engine.release_undelivered(queue_name, jobs[20:])
    assert await stream_lengths(raw, queue_name) == 20
    for job in await drain(engine, queue_name):
        await engine.complete(queue_name, job.id, job.lease_id)
    assert await stream_lengths(raw, queue_name) == 0
    # Nothing is left pending in the consumer groups either.
    for p in range(10):
        summary = await raw.xpending(f"starq:{{{queue_name}}}:s:{p}", "starq")
        assert summary.pending == 0


async def test_delete_queue_removes_every_key(engine, queue_name, raw):
    await make_queue(engine, queue_name, dedupe=True, retry_delay=30)
    await submit(engine, queue_name, *({"i": i} for i in range(30)))
    await submit(engine, queue_name, {"later": 1}, run_at_ms=now_ms() + 60_000)
    jobs = await engine.claim(queue_name, 5, "w")
    await engine.complete(queue_name, jobs[0].id, jobs[0].lease_id)
    await engine.fail(queue_name, jobs[1].id, jobs[1].lease_id)
    await engine.fail(queue_name, jobs[2].id, jobs[2].lease_id, retry=False)
    assert [k async for k in raw.scan_iter(match=keys_of(queue_name))]
    await engine.delete_queue(queue_name)
    assert [k async for k in raw.scan_iter(match=keys_of(queue_name))] == []
    assert queue_name not in await engine.queue_names()
    with pytest.raises(QueueNotFound):
        await engine.queue_info(queue_name)
    with pytest.raises(QueueNotFound):
        await engine.delete_queue(queue_name)
    with pytest.raises(QueueNotFound):
        await submit(engine, queue_name, {"a": 1})
    # The name can be used again, starting empty.
    await make_queue(engine, queue_name)
    assert sum((await engine.queue_info(queue_name)).counts.values()) == 0


async def test_delete_large_queue_in_chunks_removes_every_key(engine, queue_name, raw, monkeypatch):
    from starq.server.engine import engine as engine_module

    monkeypatch.setattr(engine_module, "PURGE_CHUNK", 7)
    await make_queue(engine, queue_name)
    for _ in range(3):
        await submit(engine, queue_name, *({"i": i} for i in range(20)))
    await engine.delete_queue(queue_name)
    assert [k async for k in raw.scan_iter(match=keys_of(queue_name))] == []


async def test_queue_being_deleted_is_not_found_and_tick_finishes_it(engine, queue_name, raw):
    """A deleting process that dies after the first step leaves the rest to the maintenance tick (the test
    runs only that first step, through the engine's own call)."""
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, *({"i": i} for i in range(10)))
    assert await engine._call("starq_begin_delete", queue_name) == 1
    with pytest.raises(QueueNotFound):
        await engine.claim(queue_name, 1)
    assert queue_name not in [q.name for q in await engine.list_queues()]
    await engine.tick(queue_name)
    assert [k async for k in raw.scan_iter(match=keys_of(queue_name))] == []


async def test_create_existing_queue_conflicts_and_list_is_sorted(engine, queue_name):
    await make_queue(engine, queue_name + "-b")
    await make_queue(engine, queue_name + "-a")
    with pytest.raises(QueueExists):
        await make_queue(engine, queue_name + "-a", max_retries=9)
    assert (await engine.queue_info(queue_name + "-a")).settings["max_retries"] == 3
    names = [q.name for q in await engine.list_queues()]
    assert names == sorted(names)
    assert {queue_name + "-a", queue_name + "-b"} <= set(names)
    await engine.delete_queue(queue_name + "-a")
    await engine.delete_queue(queue_name + "-b")
