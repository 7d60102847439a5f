"""Calls that move many jobs at once (submit, claim, ack) update the shared keys once per call: the counts,
throughput, jobs in hand and histories must come out exactly as if each job had been handled alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from engine.helpers import assert_counts_true, make_queue, make_unticked_queue, now_ms, submit
from starq.server.engine import models
from starq.worker_kit.errors import LeaseLost, NotClaimed, QueueNotFound


async def completed_and_failed(engine, queue: str) -> tuple[int, int]:
    tput = await engine.throughput(queue, 3)
    return sum(c for _, c, _ in tput.buckets), sum(f for _, _, f in tput.buckets)


async def in_hand(engine, queue: str) -> dict[str, int]:
    return {w.name: w.jobs_in_hand for w in await engine.workers(queue)}


async def test_batched_ack_counts_each_outcome_once_per_worker(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=0)
    await submit(engine, queue_name, *({"i": i} for i in range(7)))
    mine = await engine.claim(queue_name, 4, "w1")
    theirs = await engine.claim(queue_name, 3, "w2")
    assert await in_hand(engine, queue_name) == {"w1": 4, "w2": 3}
    # One call: 3 of w1's and 2 of w2's completed, 1 of each failed (dead: no retries left).
    outcomes = await engine.ack(
        queue_name,
        [(j.id, j.lease_id, json.dumps({"r": j.id})) for j in mine[:3] + theirs[:2]],
        [(mine[3].id, mine[3].lease_id, "boom", True), (theirs[2].id, theirs[2].lease_id, "boom", False)],
    )
    assert [o.status for o in outcomes] == ["completed"] * 5 + ["failed"] * 2
    assert all(o.error is None for o in outcomes)
    assert await completed_and_failed(engine, queue_name) == (5, 2)
    # Both workers hold nothing now, and so are dropped from the jobs-in-hand count.
    assert await in_hand(engine, queue_name) == {"w1": 0, "w2": 0}
    truth = await assert_counts_true(engine, queue_name)
    assert truth["completed"] == 5 and truth["failed"] == 2 and truth["claimed"] == 0
    for job in mine[:3] + theirs[:2]:
        done = await engine.get_job(queue_name, job.id)
        assert json.loads(done.result) == {"r": job.id} and done.completed_at != ""


async def test_a_job_twice_in_one_ack_is_done_once(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    (job,) = await engine.claim(queue_name, 1, "w")
    first, repeat, no_lease = await engine.ack(
        queue_name, [(job.id, job.lease_id, '{"n":1}'), (job.id, job.lease_id, '{"n":2}'), (job.id, "", "{}")], []
    )
    assert (first.status, repeat.status) == ("completed", "completed")
    assert isinstance(no_lease.error, NotClaimed)
    assert json.loads((await engine.get_job(queue_name, job.id)).result) == {"n": 1}
    assert await completed_and_failed(engine, queue_name) == (1, 0)
    assert await in_hand(engine, queue_name) == {"w": 0}
    await assert_counts_true(engine, queue_name)


async def test_ack_of_a_completed_job_as_failed_is_refused(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    (job,) = await engine.claim(queue_name, 1)
    done, failed = await engine.ack(queue_name, [(job.id, job.lease_id, "{}")], [(job.id, job.lease_id, "x", True)])
    assert done.status == "completed" and isinstance(failed.error, NotClaimed)
    assert await completed_and_failed(engine, queue_name) == (1, 0)


async def test_ack_with_a_stale_lease_after_reclaim_changes_nothing(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    (old,) = await engine.claim(queue_name, 1)
    await engine.release_undelivered(queue_name, [old])
    (new,) = await engine.claim(queue_name, 1)
    (outcome,) = await engine.ack(queue_name, [(old.id, old.lease_id, "{}")], [])
    assert isinstance(outcome.error, LeaseLost)
    assert (await engine.get_job(queue_name, new.id)).status == "claimed"
    assert await completed_and_failed(engine, queue_name) == (0, 0)


async def test_ack_on_a_missing_queue_reports_it_for_every_item(engine, queue_name):
    outcomes = await engine.ack(queue_name, [("a", "", "{}")], [("b", "", "x", True)])
    assert [o.id for o in outcomes] == ["a", "b"]
    assert all(isinstance(o.error, QueueNotFound) for o in outcomes)


async def test_large_batches_pass_the_lua_argument_limit(engine, queue_name):
    """One command carries at most a few thousand ids; larger batches are split inside the call."""
    await make_queue(engine, queue_name)
    n = 4500
    for start in range(0, n, 1000):
        await submit(engine, queue_name, *({"i": i} for i in range(start, min(n, start + 1000))))
    jobs = await engine.claim(queue_name, n, "w")
    assert len(jobs) == n
    outcomes = await engine.ack(queue_name, [(j.id, j.lease_id, "{}") for j in jobs], [])
    assert all(o.status == "completed" for o in outcomes)
    truth = await assert_counts_true(engine, queue_name)
    assert truth["completed"] == n
    assert await completed_and_failed(engine, queue_name) == (n, 0)


async def test_history_records_each_event_with_lease_and_worker(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name, retry_delay=0, max_retries=3)
    (sub,) = await submit(engine, queue_name, {"a": 1})
    (a,) = await engine.claim(queue_name, 1, "w1")
    await engine.extend(queue_name, a.id, a.lease_id, 0.05)
    await engine.fail(queue_name, a.id, a.lease_id, "boom")
    (b,) = await engine.claim(queue_name, 1, "w2")
    await engine.release_undelivered(queue_name, [b])
    (c,) = await engine.claim(queue_name, 1, "w3")
    await engine.extend(queue_name, c.id, c.lease_id, 0.001)
    while not (await engine.tick(queue_name)).reclaimed:
        pass
    (d,) = await engine.claim(queue_name, 1, "w4")
    await engine.complete(queue_name, d.id, d.lease_id, "{}")
    history = (await engine.get_job(queue_name, sub.id)).history
    assert [h["event"] for h in history] == [
        "submitted",
        "claimed",
        "extended",
        "failed",
        "claimed",
        "released",
        "claimed",
        "extended",
        "expired",
        "claimed",
        "completed",
    ]
    claims = [h for h in history if h["event"] == "claimed"]
    assert [(h["lease"], h["worker"]) for h in claims] == [
        (j.lease_id, w) for j, w in ((a, "w1"), (b, "w2"), (c, "w3"), (d, "w4"))
    ]
    assert history[3]["error"] == "boom" and history[3]["status"] == "pending" and history[3]["lease"] == a.lease_id
    assert history[5]["lease"] == b.lease_id
    assert history[8] == {**history[8], "lease": c.lease_id, "status": "pending"}
    assert history[10]["lease"] == d.lease_id and "until" in history[2]
    assert all(h["at"].endswith("Z") for h in history)


async def test_history_keeps_the_newest_fifty_events(engine, queue_name):
    await make_queue(engine, queue_name)
    (sub,) = await submit(engine, queue_name, {"a": 1})
    (job,) = await engine.claim(queue_name, 1)
    for seconds in range(60):
        await engine.extend(queue_name, job.id, job.lease_id, 100 + seconds)
    await engine.complete(queue_name, job.id, job.lease_id)
    history = (await engine.get_job(queue_name, sub.id)).history
    assert len(history) == 50
    assert history[-1]["event"] == "completed" and history[0]["event"] == "extended"
    untils = [h["until"] for h in history if h["event"] == "extended"]
    assert untils == sorted(untils) and len(untils) == 49


async def test_claimed_jobs_come_back_whole(engine, queue_name):
    await make_queue(engine, queue_name, claim_timeout=60)
    due = now_ms() - 1
    await submit(engine, queue_name, {"a": 1}, priority=3, run_at_ms=due)
    (job,) = await engine.claim(queue_name, 1, "w")
    assert job.status == "claimed" and json.loads(job.payload) == {"a": 1} and job.priority == 3
    assert job.worker == "w" and job.lease_id and job.retries == 0 and job.result is None and job.error == ""
    assert job.created_at and job.claimed_at and job.lease_expires_at > job.claimed_at
    shown = await engine.get_job(queue_name, job.id)
    assert attrs_without_history(shown) == attrs_without_history(job)
    (listed,) = (await engine.list_jobs(queue_name, "claimed")).jobs
    assert attrs_without_history(listed) == attrs_without_history(job)


def attrs_without_history(job) -> dict:
    """The job's fields as values (its JSON ones as their text)."""
    return dict(job.fields)


@pytest.mark.parametrize("ms", [0, 1, 999, 1_764_408_000_123, 4_102_444_800_000, "1764408000123"])
def test_iso_times_match_the_standard_library(ms):
    expected = datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert models.iso(ms) == expected
    assert models.iso("") == "" and models.iso(None) == ""


async def test_a_job_done_the_usual_way_writes_no_history_yet_shows_it_all(engine, queue_name, raw):
    """Submit, one claim, complete: the record's own fields stand for those events (no history text written),
    and any other event writes them out before itself."""
    await make_queue(engine, queue_name)
    (plain,) = await submit(engine, queue_name, {"a": 1})
    (job,) = await engine.claim(queue_name, 1, "w1")
    await engine.complete(queue_name, job.id, job.lease_id)
    key = f"starq:{{{queue_name}}}:job:{plain.id}"
    assert list(await raw.hmget(key, ["hist", "hn"])) == [None, "0"]
    shown = (await engine.get_job(queue_name, plain.id)).history
    assert [(h["event"], h.get("lease"), h.get("worker")) for h in shown] == [
        ("submitted", None, None),
        ("claimed", job.lease_id, "w1"),
        ("completed", job.lease_id, None),
    ]
    assert [h["at"] for h in shown] == [
        job.created_at,
        job.claimed_at,
        (await engine.get_job(queue_name, job.id)).completed_at,
    ]

    (other,) = await submit(engine, queue_name, {"b": 1})
    assert [h["event"] for h in (await engine.get_job(queue_name, other.id)).history] == ["submitted"]
    await engine.cancel(queue_name, other.id)
    assert await raw.hget(f"starq:{{{queue_name}}}:job:{other.id}", "hn") == "2"
    assert [h["event"] for h in (await engine.get_job(queue_name, other.id)).history] == ["submitted", "cancelled"]
    assert await engine.retry(queue_name, other.id) == "pending"
    (again,) = await engine.claim(queue_name, 1, "w2")
    await engine.complete(queue_name, again.id, again.lease_id)
    events = (await engine.get_job(queue_name, other.id)).history
    assert [h["event"] for h in events] == ["submitted", "cancelled", "retried", "claimed", "completed"]
    assert events[3]["worker"] == "w2" and events[4]["lease"] == again.lease_id


async def test_claims_read_only_the_priorities_a_queue_has_used(engine, queue_name, raw):
    """The queue remembers the priorities its jobs have had, and a claim skips the other streams."""
    await make_queue(engine, queue_name)
    meta = f"starq:{{{queue_name}}}:meta"
    assert await raw.hget(meta, "prios") == ""
    await submit(engine, queue_name, {"p": 0})
    await submit(engine, queue_name, {"p": 7}, priority=7)
    await submit(engine, queue_name, {"p": 7}, priority=7)
    assert sorted(await raw.hget(meta, "prios")) == ["0", "7"]
    assert [j.priority for j in await engine.claim(queue_name, 10)] == [7, 7, 0]
