"""Workflows in the engine: dependencies (chains, diamonds, failure going down the graph), batches and their
callback, progress, watching a job's outcome, and the event log."""

from __future__ import annotations

import json

import pytest

from engine.helpers import assert_counts_true, make_queue, new_job, now_ms, published_during, submit, submit_jobs
from starq.server.engine.models import Callback, NewBatch, new_job_id
from starq.worker_kit.errors import NotClaimed, UnknownDependency


async def claim_one(engine, queue):
    jobs = await engine.claim(queue, 1)
    assert len(jobs) == 1, jobs
    return jobs[0]


async def status(engine, queue, job_id):
    return (await engine.get_job(queue, job_id)).status


async def test_a_chain_runs_in_order_each_job_pending_only_when_the_one_before_completed(engine, queue_name):
    await make_queue(engine, queue_name)
    a, b, c = await submit_jobs(engine, queue_name, [
        new_job({"step": "a"}), new_job({"step": "b"}, depends_on=("#0",)), new_job({"step": "c"}, depends_on=("#1",)),
    ])  # fmt: skip
    assert (a.status, b.status, c.status) == ("pending", "waiting", "waiting")
    assert (await engine.get_job(queue_name, c.id)).depends_on == json.dumps([b.id]).replace(" ", "")
    for current, following in ((a, b), (b, c)):
        job = await claim_one(engine, queue_name)
        assert job.id == current.id
        assert await engine.claim(queue_name, 5) == []  # the next one waits
        await engine.complete(queue_name, job.id, job.lease_id)
        assert await status(engine, queue_name, following.id) == "pending"  # in the same atomic call
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    counts = await assert_counts_true(engine, queue_name)
    assert counts["completed"] == 3 and counts["waiting"] == 0


async def test_a_diamond_waits_for_both_branches(engine, queue_name):
    await make_queue(engine, queue_name)
    top, left, right, bottom = await submit_jobs(engine, queue_name, [
        new_job({"n": "top"}), new_job({"n": "left"}, depends_on=("#0",)), new_job({"n": "right"}, depends_on=("#0",)),
        new_job({"n": "bottom"}, depends_on=("#1", "#2")),
    ])  # fmt: skip
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    branches = await engine.claim(queue_name, 5)
    assert {j.id for j in branches} == {left.id, right.id}
    await engine.complete(queue_name, branches[0].id, branches[0].lease_id)
    assert await status(engine, queue_name, bottom.id) == "waiting"
    await engine.complete(queue_name, branches[1].id, branches[1].lease_id)
    assert await status(engine, queue_name, bottom.id) == "pending"
    shown = await engine.get_job(queue_name, top.id)
    assert shown.dependents == sorted([left.id, right.id])


async def test_a_dead_dependency_cancels_the_graph_below_it_in_the_same_call(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=0)
    root, child, grandchild, runner = await submit_jobs(engine, queue_name, [
        new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0",)), new_job({"n": 2}, depends_on=("#1",)),
        new_job({"n": 3}, depends_on=("#1",), on_dependency_failure="run"),
    ])  # fmt: skip
    job = await claim_one(engine, queue_name)
    assert await engine.fail(queue_name, job.id, job.lease_id, "boom") == ("failed", 0)
    c = await engine.get_job(queue_name, child.id)
    assert c.status == "cancelled" and c.error == f"dependency {root.id} was dead-lettered"
    g = await engine.get_job(queue_name, grandchild.id)
    assert g.status == "cancelled" and g.error == f"dependency {child.id} was cancelled"
    # "run": a failed dependency counts as done.
    assert await status(engine, queue_name, runner.id) == "pending"
    await assert_counts_true(engine, queue_name)


async def test_a_retried_failure_is_not_a_failure_of_the_dependents(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=1, retry_delay=0)
    _, child = await submit_jobs(engine, queue_name, [new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0",))])
    job = await claim_one(engine, queue_name)
    assert (await engine.fail(queue_name, job.id, job.lease_id, "once"))[0] == "pending"
    assert await status(engine, queue_name, child.id) == "waiting"
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    assert await status(engine, queue_name, child.id) == "pending"


async def test_cancelling_a_dependency_by_hand_cancels_its_waiting_dependents(engine, queue_name):
    await make_queue(engine, queue_name)
    a, b = await submit_jobs(engine, queue_name, [new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0",))])
    await engine.cancel(queue_name, a.id)
    assert (await engine.get_job(queue_name, b.id)).error == f"dependency {a.id} was cancelled"
    # A waiting job can be cancelled itself too.
    (c,) = await submit(engine, queue_name, {"n": 2})
    (d,) = await submit(engine, queue_name, {"n": 3}, depends_on=(c.id,))
    assert await engine.cancel(queue_name, d.id) == "cancelled"
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)  # its dependency completing changes nothing
    assert await status(engine, queue_name, d.id) == "cancelled"
    await assert_counts_true(engine, queue_name)


async def test_dependencies_already_finished_count_at_submit(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=0)
    done_id, dead_id = (s.id for s in await submit(engine, queue_name, {"n": 0}, {"n": 1}))
    for _ in range(2):
        job = await claim_one(engine, queue_name)
        if job.id == done_id:
            await engine.complete(queue_name, job.id, job.lease_id)
        else:
            await engine.fail(queue_name, job.id, job.lease_id, "x", retry=False)
    (ready,) = await submit(engine, queue_name, {"n": 2}, depends_on=(done_id,))
    assert ready.status == "pending"
    (doomed,) = await submit(engine, queue_name, {"n": 3}, depends_on=(done_id, dead_id))
    assert doomed.status == "cancelled" and doomed.error == f"dependency {dead_id} was dead-lettered"
    (anyway,) = await submit(engine, queue_name, {"n": 4}, depends_on=(dead_id,), on_dependency_failure="run")
    assert anyway.status == "pending"


async def test_an_unknown_dependency_fails_the_whole_submit_naming_it(engine, queue_name):
    await make_queue(engine, queue_name)
    ghost = new_job_id()
    with pytest.raises(UnknownDependency) as caught:
        await submit_jobs(engine, queue_name, [new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0", ghost))])
    assert (caught.value.item, caught.value.index, caught.value.job_id) == (1, 1, ghost)
    assert (await engine.queue_info(queue_name)).counts["pending"] == 0  # nothing was stored


async def test_a_delayed_dependent_is_scheduled_when_its_dependencies_complete_early(engine, queue_name):
    await make_queue(engine, queue_name)
    a, b = await submit_jobs(engine, queue_name, [
        new_job({"n": 0}), new_job({"n": 1}, run_at_ms=now_ms() + 60_000, depends_on=("#0",)),
    ])  # fmt: skip
    assert b.status == "waiting"
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    assert await status(engine, queue_name, b.id) == "scheduled"


async def test_purging_an_unfinished_dependency_cancels_its_dependents(engine, queue_name):
    await make_queue(engine, queue_name)
    a, b = await submit_jobs(engine, queue_name, [new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0",))])
    assert await engine.purge_status(queue_name, "pending") == 1
    assert (await engine.get_job(queue_name, b.id)).error == f"dependency {a.id} was removed"
    await assert_counts_true(engine, queue_name)


# -- batches -----------------------------------------------------------------------------------------------


async def test_a_batch_submits_its_callback_once_when_its_last_job_finishes(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=0)
    batch = NewBatch(new_job_id(), Callback('{"report":true}', 5), new_job_id())
    jobs = [new_job({"n": i}) for i in range(3)]
    submitted = await engine.submit(queue_name, jobs, [new_job_id() for _ in jobs], batch)
    assert all(j.batch_id == batch.id for j in [await engine.get_job(queue_name, s.id) for s in submitted])
    claimed = await engine.claim(queue_name, 3)
    await engine.complete(queue_name, claimed[0].id, claimed[0].lease_id)
    await engine.fail(queue_name, claimed[1].id, claimed[1].lease_id, "no", retry=False)
    state = await engine.get_batch(queue_name, batch.id)
    assert (state.total, state.completed, state.failed, state.finished) == (3, 1, 1, False)
    await engine.cancel(queue_name, claimed[2].id)
    state = await engine.get_batch(queue_name, batch.id)
    assert state.finished and state.callback_job_id == batch.callback_id
    callback = await engine.get_job(queue_name, batch.callback_id)
    assert callback.status == "pending" and callback.priority == 5
    assert json.loads(callback.payload) == {
        "report": True, "batch": {"id": batch.id, "total": 3, "completed": 1, "failed": 1, "cancelled": 1},
    }  # fmt: skip
    # A job of the batch retried by hand and finished again is not counted twice, nor is the callback repeated.
    await engine.retry(queue_name, claimed[1].id)
    again = await claim_one(engine, queue_name)
    while again.id != claimed[1].id:
        again = await claim_one(engine, queue_name)
    await engine.complete(queue_name, again.id, again.lease_id)
    assert (await engine.get_batch(queue_name, batch.id)).completed == 1
    assert (await engine.queue_info(queue_name)).counts["completed"] == 2


async def test_a_callback_for_another_queue_goes_through_the_outbox(engine, queue_name):
    other = queue_name + "-reports"
    await make_queue(engine, queue_name)
    await make_queue(engine, other)
    batch = NewBatch(new_job_id(), Callback("{}", 0, other), new_job_id())
    await engine.submit(queue_name, [new_job({"n": 1})], [new_job_id()], batch)
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    ticked = await engine.tick(queue_name)
    assert len(ticked.outbox) == 1
    # Delivered twice (a process that died before taking it out of the outbox): stored once.
    assert await engine.deliver_outbox(queue_name, ticked.outbox) == 1
    await engine.deliver_outbox(queue_name, ticked.outbox)
    assert (await engine.tick(queue_name)).outbox == []
    callback = await engine.get_job(other, batch.callback_id)
    assert json.loads(callback.payload)["batch"]["completed"] == 1
    assert (await engine.queue_info(other)).counts["pending"] == 1


async def test_a_batch_whose_jobs_are_all_cancelled_at_submit_calls_back_at_once(engine, queue_name):
    await make_queue(engine, queue_name, max_retries=0)
    (dead,) = await submit(engine, queue_name, {"n": 0})
    job = await claim_one(engine, queue_name)
    await engine.fail(queue_name, job.id, job.lease_id, "x", retry=False)
    batch = NewBatch(new_job_id(), Callback("{}"), new_job_id())
    await engine.submit(queue_name, [new_job({"n": 1}, depends_on=(dead.id,))], [new_job_id()], batch)
    state = await engine.get_batch(queue_name, batch.id)
    assert state.finished and state.cancelled == 1
    assert (await engine.get_job(queue_name, batch.callback_id)).status == "pending"


# -- progress and outcomes ---------------------------------------------------------------------------------


async def test_progress_is_kept_and_follows_the_lease_rules(engine, queue_name):
    await make_queue(engine, queue_name)
    (s,) = await submit(engine, queue_name, {"n": 0})
    assert (await engine.get_job(queue_name, s.id)).progress is None
    job = await claim_one(engine, queue_name)
    await engine.progress(queue_name, job.id, job.lease_id, '{"done":3,"of":10}')
    assert json.loads((await engine.get_job(queue_name, s.id)).progress) == {"done": 3, "of": 10}
    await engine.complete(queue_name, job.id, job.lease_id)
    with pytest.raises(NotClaimed):
        await engine.progress(queue_name, job.id, job.lease_id, "50")


async def test_finishing_a_watched_job_publishes_it_and_an_unwatched_one_does_not(engine, raw, queue_name):
    await make_queue(engine, queue_name)
    watched, quiet = await submit(engine, queue_name, {"n": 0}, {"n": 1})
    await engine.watch_job(queue_name, watched.id)

    async def finish_both() -> None:
        for job in await engine.claim(queue_name, 2):
            await engine.complete(queue_name, job.id, job.lease_id)

    heard = await published_during(engine, raw, finish_both)
    assert ("done", f"{queue_name} {watched.id}") in heard
    assert all(quiet.id not in message for _, message in heard)


# -- the event log ------------------------------------------------------------------------------------------


async def test_a_queue_without_events_writes_no_log(engine, queue_name, raw):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"n": 0})
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    assert await raw.exists([f"starq:{{{queue_name}}}:events"]) == 0
    assert (await engine.read_events(queue_name, 0)).events == []


async def test_events_record_each_transition_in_order(engine, queue_name):
    await make_queue(engine, queue_name, events=True, max_retries=1, retry_delay=0)
    a, b = await submit_jobs(engine, queue_name, [new_job({"n": 0}), new_job({"n": 1}, depends_on=("#0",))])
    job = await claim_one(engine, queue_name)
    await engine.progress(queue_name, job.id, job.lease_id, "0.5")
    await engine.fail(queue_name, job.id, job.lease_id, "once")
    job = await claim_one(engine, queue_name)
    await engine.complete(queue_name, job.id, job.lease_id)
    page = await engine.read_events(queue_name, 0)
    seen = [(e.number, e.kind, e.job_id, e.status) for e in page.events]
    assert seen == [
        (1, "submitted", a.id, "pending"), (2, "submitted", b.id, "waiting"), (3, "claimed", a.id, "claimed"),
        (4, "progress", a.id, "claimed"), (5, "retried", a.id, "pending"), (6, "claimed", a.id, "claimed"),
        (7, "completed", a.id, "completed"), (8, "pending", b.id, "pending"),
    ]  # fmt: skip
    assert json.loads(page.events[4].extra) == {"error": "once", "retries": 1}
    assert json.loads(page.events[3].extra) == {"progress": 0.5}
    assert (page.first, page.last) == (1, 8)
    assert [e.number for e in (await engine.read_events(queue_name, 6)).events] == [7, 8]


async def test_the_log_is_capped_and_says_where_it_now_starts(engine, queue_name):
    await make_queue(engine, queue_name, events=True, events_max=100)
    for _ in range(5):
        await submit(engine, queue_name, *({"i": i} for i in range(100)))
    page = await engine.read_events(queue_name)
    assert page.last == 500 and page.first > 300  # trimmed near the cap (Redis trims whole nodes: "about")
    assert 100 <= page.last - page.first + 1 <= 200
