"""Bulk actions: retry, cancel, promote and delete of many jobs in one call, each item as its single call."""

from __future__ import annotations

import pytest

from engine.helpers import all_jobs, assert_counts_true, drain, make_queue, new_job, now_ms, submit, submit_jobs
from starq.server.engine.engine import BULK_CHUNK
from starq.server.engine.models import STATUSES, new_job_id
from starq.worker_kit.errors import InvalidState, JobNotFound, QueueNotFound

NONE = dict.fromkeys(STATUSES, 0)


def summary(outcomes) -> list[tuple[str, str, str]]:
    """(id, status or "", error code or "") per outcome."""
    return [(o.id, o.status, o.error.code if o.error else "") for o in outcomes]


async def dead_jobs(engine, queue: str, n: int) -> list[str]:
    """n jobs submitted, claimed and dead-lettered; their ids."""
    subs = await submit(engine, queue, *({"dead": i} for i in range(n)))
    for job in await drain(engine, queue):
        await engine.fail(queue, job.id, job.lease_id, "boom", retry=False)
    return [s.id for s in subs]


async def test_bulk_retry_revives_dead_and_cancelled_and_refuses_the_rest(engine, queue_name):
    await make_queue(engine, queue_name)
    dead = await dead_jobs(engine, queue_name, 3)
    (cancelled,) = await submit(engine, queue_name, {"c": 1})
    await engine.cancel(queue_name, cancelled.id)
    (pending,) = await submit(engine, queue_name, {"p": 1})
    ghost = new_job_id()
    ids = [dead[0], pending.id, ghost, dead[1], cancelled.id, dead[2]]
    outcomes = await engine.bulk(queue_name, "retry", ids)
    assert summary(outcomes) == [
        (dead[0], "pending", ""),
        (pending.id, "", "invalid_state"),
        (ghost, "", "job_not_found"),
        (dead[1], "pending", ""),
        (cancelled.id, "pending", ""),
        (dead[2], "pending", ""),
    ]
    # The same errors as the single call, word for word.
    with pytest.raises(InvalidState) as single:
        await engine.retry(queue_name, pending.id)
    assert outcomes[1].error.detail == single.value.detail
    for job_id in (*dead, cancelled.id):
        job = await engine.get_job(queue_name, job_id)
        assert job.status == "pending" and job.retries == 0
    assert await assert_counts_true(engine, queue_name) == {**NONE, "pending": 5}
    assert len(await drain(engine, queue_name)) == 5


async def test_bulk_cancel_does_each_state_as_cancel_does(engine, queue_name, raw):
    await make_queue(engine, queue_name)
    (completed,) = await submit(engine, queue_name, {"n": 3})
    (done,) = await engine.claim(queue_name, 1)
    await engine.complete(queue_name, done.id, done.lease_id)
    (claimed,) = await submit(engine, queue_name, {"n": 0})
    await engine.claim(queue_name, 1, "w")
    (pending,) = await submit(engine, queue_name, {"n": 1})
    (scheduled,) = await submit(engine, queue_name, {"n": 2}, run_at_ms=now_ms() + 60_000)
    ids = [pending.id, scheduled.id, claimed.id, completed.id]
    outcomes = await engine.bulk(queue_name, "cancel", ids)
    assert summary(outcomes) == [
        (pending.id, "cancelled", ""),
        (scheduled.id, "cancelled", ""),
        (claimed.id, "cancelled", ""),
        (completed.id, "", "invalid_state"),
    ]
    assert "only waiting, pending, scheduled or claimed" in outcomes[3].error.detail
    assert await engine.claim(queue_name, 10) == []
    assert await raw.zcard(f"starq:{{{queue_name}}}:sched") == 0
    assert await raw.zcard(f"starq:{{{queue_name}}}:leases") == 0
    assert (await engine.workers(queue_name))[0].jobs_in_hand == 0
    assert await assert_counts_true(engine, queue_name) == {**NONE, "cancelled": 3, "completed": 1}


async def test_bulk_cancel_cascades_to_dependents_before_the_next_id(engine, queue_name):
    await make_queue(engine, queue_name)
    a, b, c = await submit_jobs(engine, queue_name, [
        new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0",)), new_job({"n": 2}, depends_on=("#1",)),
    ])  # fmt: skip
    # b was cancelled by a's cancel (as the single cancel does) before its own id came: refused as cancel would.
    outcomes = await engine.bulk(queue_name, "cancel", [a.id, b.id])
    assert summary(outcomes) == [(a.id, "cancelled", ""), (b.id, "", "invalid_state")]
    assert (await engine.get_job(queue_name, b.id)).error == f"dependency {a.id} was cancelled"
    assert (await engine.get_job(queue_name, c.id)).error == f"dependency {b.id} was cancelled"
    assert await assert_counts_true(engine, queue_name) == {**NONE, "cancelled": 3}


async def test_the_cascade_holds_across_the_calls_a_long_list_is_split_into(engine, queue_name):
    await make_queue(engine, queue_name)
    a, b = await submit_jobs(engine, queue_name, [new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0",))])
    fillers = [s.id for s in await submit(engine, queue_name, *({"f": i} for i in range(BULK_CHUNK)))]
    outcomes = await engine.bulk(queue_name, "cancel", [a.id, *fillers, b.id, a.id])
    assert len(outcomes) == BULK_CHUNK + 3
    assert summary(outcomes[-2:]) == [(b.id, "", "invalid_state"), (a.id, "", "invalid_state")]
    assert all(o.status == "cancelled" for o in outcomes[:-2])
    assert await assert_counts_true(engine, queue_name) == {**NONE, "cancelled": BULK_CHUNK + 2}


async def test_bulk_promote_makes_scheduled_jobs_pending(engine, queue_name, raw):
    await make_queue(engine, queue_name)
    later = await submit(engine, queue_name, {"n": 0}, {"n": 1}, run_at_ms=now_ms() + 60_000)
    (pending,) = await submit(engine, queue_name, {"n": 2})
    ids = [later[0].id, pending.id, later[1].id]
    outcomes = await engine.bulk(queue_name, "promote", ids)
    assert summary(outcomes) == [
        (later[0].id, "pending", ""), (pending.id, "", "invalid_state"), (later[1].id, "pending", ""),
    ]  # fmt: skip
    assert "only scheduled jobs can be promoted" in outcomes[1].error.detail
    assert await raw.zcard(f"starq:{{{queue_name}}}:sched") == 0
    assert {j.id for j in await drain(engine, queue_name)} == {s.id for s in (*later, pending)}
    assert await assert_counts_true(engine, queue_name) == {**NONE, "claimed": 3}


async def test_bulk_delete_removes_finished_jobs_and_refuses_unfinished(engine, queue_name, raw):
    await make_queue(engine, queue_name)
    dead = await dead_jobs(engine, queue_name, 1)
    (done,) = await submit(engine, queue_name, {"n": 1}, tags=("t",), unique_key="u")
    (job,) = await engine.claim(queue_name, 1)
    await engine.complete(queue_name, job.id, job.lease_id)
    (cancelled,) = await submit(engine, queue_name, {"n": 2})
    await engine.cancel(queue_name, cancelled.id)
    (pending,) = await submit(engine, queue_name, {"n": 3})
    (scheduled,) = await submit(engine, queue_name, {"n": 4}, run_at_ms=now_ms() + 60_000)
    ids = [dead[0], done.id, pending.id, cancelled.id, scheduled.id]
    outcomes = await engine.bulk(queue_name, "delete", ids)
    assert summary(outcomes) == [
        (dead[0], "deleted", ""),
        (done.id, "deleted", ""),
        (pending.id, "", "invalid_state"),
        (cancelled.id, "deleted", ""),
        (scheduled.id, "", "invalid_state"),
    ]
    assert "only completed, failed or cancelled jobs can be deleted" in outcomes[2].error.detail
    for job_id in (dead[0], done.id, cancelled.id):
        with pytest.raises(JobNotFound):
            await engine.get_job(queue_name, job_id)
        assert await raw.zscore(f"starq:{{{queue_name}}}:expiry", job_id) is None
    assert await raw.zcard(f"starq:{{{queue_name}}}:tag:t") == 0
    assert await assert_counts_true(engine, queue_name) == {**NONE, "pending": 1, "scheduled": 1}
    # Its unique key went with the record: the same key may be submitted again.
    (again,) = await submit(engine, queue_name, {"n": 5}, unique_key="u")
    assert not again.skipped


async def test_duplicate_ids_are_done_once_then_answered_as_a_second_call(engine, queue_name):
    await make_queue(engine, queue_name)
    a, b = await dead_jobs(engine, queue_name, 2)
    outcomes = await engine.bulk(queue_name, "retry", [a, a])
    assert summary(outcomes) == [(a, "pending", ""), (a, "", "invalid_state")]
    outcomes = await engine.bulk(queue_name, "delete", [b, b])
    assert summary(outcomes) == [(b, "deleted", ""), (b, "", "job_not_found")]
    assert await assert_counts_true(engine, queue_name) == {**NONE, "pending": 1}


async def test_bulk_on_a_missing_queue_raises_and_empty_ids_do_nothing(engine, queue_name):
    with pytest.raises(QueueNotFound):
        await engine.bulk(queue_name, "cancel", [new_job_id()])
    with pytest.raises(QueueNotFound):
        await engine.bulk(queue_name, "cancel", [])
    await make_queue(engine, queue_name)
    assert await engine.bulk(queue_name, "delete", []) == []


async def test_bulk_of_a_thousand_keeps_counts_exact(engine, queue_name):
    await make_queue(engine, queue_name)
    subs = await submit(engine, queue_name, *({"i": i} for i in range(1000)))
    ids = [s.id for s in subs]
    outcomes = await engine.bulk(queue_name, "cancel", ids)
    assert all(o.status == "cancelled" for o in outcomes) and [o.id for o in outcomes] == ids
    assert await assert_counts_true(engine, queue_name) == {**NONE, "cancelled": 1000}
    outcomes = await engine.bulk(queue_name, "retry", ids[:500])
    assert all(o.status == "pending" for o in outcomes)
    outcomes = await engine.bulk(queue_name, "delete", ids)
    assert sum(o.status == "deleted" for o in outcomes) == 500
    assert await assert_counts_true(engine, queue_name) == {**NONE, "pending": 500}
    assert len(await all_jobs(engine, queue_name)) == 500
