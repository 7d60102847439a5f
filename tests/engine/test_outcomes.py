"""Complete, fail, extend and release: lease fencing, idempotent repeats, retries with backoff, dead-lettering."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import trio

from engine.helpers import assert_counts_true, make_queue, make_unticked_queue, now_ms, submit
from starq.server.engine.engine import Ticked
from starq.server.engine.models import NewJob, new_job_id
from starq.worker_kit.errors import JobNotFound, LeaseLost, NotClaimed


def ms(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp() * 1000


async def claim_one(engine, queue, worker=""):
    jobs = await engine.claim(queue, 1, worker)
    assert len(jobs) == 1, jobs
    return jobs[0]


async def test_a_job_submitted_claimed_and_completed(engine, queue_name):
    """The whole round trip through the engine's own calls, with a payload written by hand."""
    await engine.create_queue(queue_name, {})
    subs = await engine.submit(queue_name, [NewJob(payload='{"a":1}')], [new_job_id()])
    assert subs[0].status == "pending"
    jobs = await engine.claim(queue_name, 5, "w1")
    assert len(jobs) == 1 and jobs[0].status == "claimed"
    assert await engine.complete(queue_name, jobs[0].id, jobs[0].lease_id, '{"ok":true}') == "completed"
    info = await engine.queue_info(queue_name)
    assert info.counts["completed"] == 1


async def test_history_of_a_job_failed_once_then_completed_by_another_worker(engine, queue_name):
    await engine.create_queue(queue_name, {"retry_delay": 0})
    (sub,) = await engine.submit(queue_name, [NewJob(payload='{"a":1}')], [new_job_id()])
    (job,) = await engine.claim(queue_name, 1, "w1")
    await engine.fail(queue_name, job.id, job.lease_id, "boom")
    (job2,) = await engine.claim(queue_name, 1, "w2")
    await engine.complete(queue_name, job2.id, job2.lease_id)
    got = await engine.get_job(queue_name, sub.id)
    assert [h["event"] for h in got.history] == ["submitted", "claimed", "failed", "claimed", "completed"]
    assert got.history[2]["error"] == "boom" and got.history[3]["worker"] == "w2"


async def test_complete_stores_result_and_counts(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name, "w")
    assert await engine.complete(queue_name, job.id, job.lease_id, '{"answer":42}') == "completed"
    done = await engine.get_job(queue_name, job.id)
    assert done.status == "completed" and json.loads(done.result) == {"answer": 42}
    assert done.completed_at != "" and done.lease_id == "" and done.lease_expires_at == ""
    truth = await assert_counts_true(engine, queue_name)
    assert truth["completed"] == 1 and truth["claimed"] == 0


async def test_complete_without_lease_id_is_accepted_while_claimed(engine, queue_name):
    """The original API had no leases: a worker that quotes none may complete the job it holds."""
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    assert await engine.complete(queue_name, job.id, "", "{}") == "completed"


async def test_repeated_complete_with_same_lease_is_ok_and_counts_once(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id, '{"n":1}')
    assert await engine.complete(queue_name, job.id, job.lease_id, '{"n":2}') == "completed"
    done = await engine.get_job(queue_name, job.id)
    assert json.loads(done.result) == {"n": 1}  # the repeat changed nothing
    assert (await engine.queue_info(queue_name)).counts["completed"] == 1
    tput = await engine.throughput(queue_name, 2)
    assert sum(c for _, c, _ in tput.buckets) == 1


async def test_complete_without_lease_after_complete_is_conflict(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    with pytest.raises(NotClaimed):
        await engine.complete(queue_name, job.id, "")


async def test_complete_of_unclaimed_job_is_conflict(engine, queue_name):
    await make_queue(engine, queue_name)
    (sub,) = await submit(engine, queue_name, {"a": 1})
    with pytest.raises(NotClaimed):
        await engine.complete(queue_name, sub.id, "")
    with pytest.raises(NotClaimed):
        await engine.fail(queue_name, sub.id, "")
    with pytest.raises(NotClaimed):
        await engine.extend(queue_name, sub.id, "")
    job = await engine.get_job(queue_name, sub.id)
    assert job.status == "pending"
    (claimed,) = await engine.claim(queue_name, 1)
    assert claimed.id == sub.id  # still delivered exactly once


async def test_unknown_job_is_not_found(engine, queue_name):
    await make_queue(engine, queue_name)
    for call in (engine.complete, engine.fail, engine.extend, engine.cancel, engine.retry, engine.get_job):
        with pytest.raises(JobNotFound):
            await call(queue_name, "no-such-job")


async def test_stale_lease_cannot_complete_fail_or_extend_after_reclaim(engine, queue_name, raw):
    """A reclaimed job belongs to its new holder: the old worker's lease is fenced off."""
    await make_unticked_queue(engine, raw, queue_name, retry_delay=0)
    await submit(engine, queue_name, {"a": 1})
    old = await claim_one(engine, queue_name, "old")
    await engine.extend(queue_name, old.id, old.lease_id, 0.05)
    await trio.sleep(0.1)
    assert (await engine.tick(queue_name)).reclaimed == 1
    new = await claim_one(engine, queue_name, "new")
    assert new.id == old.id and new.lease_id != old.lease_id and new.retries == 1
    with pytest.raises(LeaseLost):
        await engine.complete(queue_name, old.id, old.lease_id)
    with pytest.raises(LeaseLost):
        await engine.fail(queue_name, old.id, old.lease_id)
    with pytest.raises(LeaseLost):
        await engine.extend(queue_name, old.id, old.lease_id)
    assert await engine.complete(queue_name, new.id, new.lease_id) == "completed"
    # The old lease stays fenced after the job finished, too.
    with pytest.raises(NotClaimed):
        await engine.complete(queue_name, old.id, old.lease_id)


async def test_complete_repeat_after_a_fail_under_same_lease_is_conflict(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=0)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    await engine.fail(queue_name, job.id, job.lease_id, "x")
    with pytest.raises(NotClaimed):
        await engine.complete(queue_name, job.id, job.lease_id)


async def test_fail_is_retried_promptly_after_backoff_not_claim_timeout(engine, queue_name):
    await make_queue(engine, queue_name, claim_timeout=600, retry_delay=0.2)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    status, retries = await engine.fail(queue_name, job.id, job.lease_id, "boom")
    assert (status, retries) == ("scheduled", 1)
    failed = await engine.get_job(queue_name, job.id)
    assert failed.error == "boom" and failed.status == "scheduled"
    # Equal jitter: the first backoff is between half and all of retry_delay.
    assert 0 < ms(failed.run_at) - ms(failed.claimed_at) <= 400
    await trio.sleep(0.25)
    again = await claim_one(engine, queue_name)
    assert again.id == job.id and again.retries == 1
    await assert_counts_true(engine, queue_name)


async def test_fail_with_zero_retry_delay_is_pending_at_once(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    assert await engine.fail(queue_name, job.id, job.lease_id, "e") == ("pending", 1)
    assert (await claim_one(engine, queue_name)).id == job.id


async def test_backoff_grows_exponentially_and_is_capped(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=10, retry_delay_max=25, max_retries=5)
    (sub,) = await submit(engine, queue_name, {"a": 1})
    delays = []
    for _ in range(3):
        job = await claim_one(engine, queue_name)
        await engine.fail(queue_name, job.id, job.lease_id, "e")
        failed = await engine.get_job(queue_name, sub.id)
        delays.append(ms(failed.run_at) - now_ms())
        # Make the retry due now instead of waiting it out.
        assert await engine.promote(queue_name, sub.id) == "pending"
    # retry_delay * 2^(n-1), capped at 25 s, with equal jitter (half fixed): [5,10], [10,20], [12.5,25].
    assert 4_500 <= delays[0] <= 10_100
    assert 9_500 <= delays[1] <= 20_100
    assert 12_000 <= delays[2] <= 25_100


async def test_retry_false_dead_letters_at_once(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=5)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    assert await engine.fail(queue_name, job.id, job.lease_id, "fatal", retry=False) == ("failed", 0)
    dead = await engine.get_job(queue_name, job.id)
    assert dead.status == "failed" and dead.error == "fatal" and dead.completed_at != ""
    assert await engine.claim(queue_name, 1) == []
    truth = await assert_counts_true(engine, queue_name)
    assert truth["failed"] == 1


async def test_runs_max_retries_plus_one_times_then_dead(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=3, retry_delay=0)
    await submit(engine, queue_name, {"a": 1})
    runs = []
    while jobs := await engine.claim(queue_name, 1):
        job = jobs[0]
        runs.append(job.retries)
        status, retries = await engine.fail(queue_name, job.id, job.lease_id, f"attempt {len(runs)}")
    assert runs == [0, 1, 2, 3]
    assert (status, retries) == ("failed", 3)
    dead = await engine.get_job(queue_name, job.id)
    assert dead.status == "failed" and dead.error == "attempt 4"
    await assert_counts_true(engine, queue_name)


async def test_repeated_fail_with_same_lease_is_ok_and_counts_once(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=3)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    assert await engine.fail(queue_name, job.id, job.lease_id, "e") == ("pending", 1)
    assert await engine.fail(queue_name, job.id, job.lease_id, "e") == ("pending", 1)
    assert (await engine.get_job(queue_name, job.id)).retries == 1
    again = await claim_one(engine, queue_name)
    # The repeat of the old lease's fail must not fail the new attempt.
    with pytest.raises(LeaseLost):
        await engine.fail(queue_name, job.id, job.lease_id, "e")
    assert (await engine.get_job(queue_name, job.id)).status == "claimed"
    await engine.complete(queue_name, again.id, again.lease_id)


async def test_extend_moves_lease_and_keeps_job(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name, claim_timeout=1)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    expires = await engine.extend(queue_name, job.id, job.lease_id, 30)
    assert ms(expires) - now_ms() > 25_000
    assert (await engine.get_job(queue_name, job.id)).lease_expires_at == expires
    await trio.sleep(1.1)
    assert (await engine.tick(queue_name)).reclaimed == 0  # the original 1 s lease would have expired
    assert (await engine.get_job(queue_name, job.id)).status == "claimed"
    # Default: the queue's claim_timeout from now (the store's now, somewhere between the call and its answer).
    asked = now_ms()
    expires = await engine.extend(queue_name, job.id, job.lease_id)
    assert asked + 1_000 <= ms(expires) <= now_ms() + 1_000
    assert await engine.extend(queue_name, job.id, job.lease_id, 10)  # repeatable


async def test_expired_lease_is_reclaimed_by_tick_and_counts_as_attempt(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name, max_retries=1, claim_timeout=600)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name, "w")
    assert (await engine.tick(queue_name)).reclaimed == 0
    await engine.extend(queue_name, job.id, job.lease_id, 0.05)
    await trio.sleep(0.1)
    assert await engine.tick(queue_name) == Ticked(reclaimed=1)
    back = await engine.get_job(queue_name, job.id)
    assert back.status == "pending" and back.retries == 1 and back.error == "lease expired"
    again = await claim_one(engine, queue_name)
    assert again.retries == 1
    await engine.extend(queue_name, again.id, again.lease_id, 0.05)
    await trio.sleep(0.1)
    assert (await engine.tick(queue_name)).reclaimed == 1
    dead = await engine.get_job(queue_name, job.id)
    assert dead.status == "failed" and "dead-lettered" in dead.error and "attempt 2 of 2" in dead.error
    assert await engine.claim(queue_name, 1) == []
    truth = await assert_counts_true(engine, queue_name)
    assert truth["failed"] == 1
    assert await engine.workers(queue_name) and (await engine.workers(queue_name))[0].jobs_in_hand == 0


async def test_real_claim_timeout_expiry(engine, queue_name, raw):
    """A lease of claim_timeout seconds, untouched, is reclaimed by the first tick after it passes."""
    await make_unticked_queue(engine, raw, queue_name, claim_timeout=1)
    await submit(engine, queue_name, {"a": 1})
    job = await claim_one(engine, queue_name)
    expiry = ms(job.lease_expires_at)
    await trio.sleep(0.5)
    # Not expired yet, unless this busy machine slept past the lease (the store ticked before the answer came).
    assert (await engine.tick(queue_name)).reclaimed == 0 or now_ms() >= expiry
    await trio.sleep(max(0, expiry - now_ms()) / 1000 + 0.05)
    assert (await engine.tick(queue_name)).reclaimed == 1
    assert (await claim_one(engine, queue_name)).id == job.id


async def test_release_returns_jobs_without_counting_an_attempt(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"i": 0}, {"i": 1}, {"i": 2})
    jobs = await engine.claim(queue_name, 2, "w")
    assert await engine.release_undelivered(queue_name, jobs) == 2
    for job in jobs:
        back = await engine.get_job(queue_name, job.id)
        assert back.status == "pending" and back.retries == 0 and back.worker == "" and back.claimed_at == ""
    # Released jobs are claimable at once; a second release (stale lease) does nothing.
    assert await engine.release_undelivered(queue_name, jobs) == 0
    again = await engine.claim(queue_name, 3)
    assert {j.id for j in again} >= {j.id for j in jobs}
    await assert_counts_true(engine, queue_name)
    assert (await engine.workers(queue_name))[0].jobs_in_hand == 0


async def test_release_of_a_job_already_reclaimed_is_ignored(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    old = await claim_one(engine, queue_name)
    await engine.release_undelivered(queue_name, [old])
    new = await claim_one(engine, queue_name)
    assert await engine.release_undelivered(queue_name, [old]) == 0
    assert (await engine.get_job(queue_name, new.id)).lease_id == new.lease_id


async def test_ack_batch_reports_each_item(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0)
    await submit(engine, queue_name, {"i": 0}, {"i": 1}, {"i": 2})
    a, b, c = await engine.claim(queue_name, 3)
    outcomes = await engine.ack(
        queue_name,
        [(a.id, a.lease_id, '{"ok":1}'), ("nope", "", "{}")],
        [(b.id, b.lease_id, "bad", True), (c.id, "stale", "bad", False)],
    )
    assert [(o.id, o.status) for o in outcomes[:1]] == [(a.id, "completed")]
    assert isinstance(outcomes[1].error, JobNotFound)
    assert (outcomes[2].status, outcomes[2].retries) == ("pending", 1)
    assert isinstance(outcomes[3].error, LeaseLost)
    await assert_counts_true(engine, queue_name)
