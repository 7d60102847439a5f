"""Claiming: count, priority order, FIFO within a priority, scheduling and promotion, pause/resume."""

from __future__ import annotations

import json

import orjson
import trio

from engine.helpers import assert_counts_true, drain, make_queue, make_unticked_queue, now_ms, payload_of, submit
from starq.server.engine.engine import Ticked


async def test_claim_hands_out_at_most_count(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, *({"i": i} for i in range(7)))
    first = await engine.claim(queue_name, 3, "w")
    assert len(first) == 3
    assert all(j.status == "claimed" and j.lease_id and j.lease_expires_at and j.worker == "w" for j in first)
    assert len({j.lease_id for j in first}) == 3
    rest = await engine.claim(queue_name, 100)
    assert len(rest) == 4
    assert await engine.claim(queue_name, 5) == []
    info = await engine.queue_info(queue_name)
    assert info.counts["claimed"] == 7 and info.counts["pending"] == 0


async def test_claim_sets_lease_from_claim_timeout(engine, queue_name):
    await make_queue(engine, queue_name, claim_timeout=120)
    await submit(engine, queue_name, {"a": 1})
    before = now_ms()
    (job,) = await engine.claim(queue_name, 1)
    from datetime import datetime

    expires = datetime.fromisoformat(job.lease_expires_at.replace("Z", "+00:00")).timestamp() * 1000
    assert before + 119_000 <= expires <= before + 125_000
    assert job.claimed_at != "" and job.retries == 0


async def test_highest_priority_first_then_fifo(engine, queue_name):
    await make_queue(engine, queue_name)
    # Interleave priorities across several submits so order of arrival differs from priority order.
    await submit(engine, queue_name, {"p": 0, "i": 0}, priority=0)
    await submit(engine, queue_name, {"p": 5, "i": 0}, priority=5)
    await submit(engine, queue_name, {"p": 9, "i": 0}, priority=9)
    await submit(engine, queue_name, {"p": 0, "i": 1}, priority=0)
    await submit(engine, queue_name, {"p": 5, "i": 1}, {"p": 5, "i": 2}, priority=5)
    await submit(engine, queue_name, {"p": 9, "i": 1}, priority=9)
    order = [payload_of(j) for j in await drain(engine, queue_name)]
    assert order == [
        {"p": 9, "i": 0},
        {"p": 9, "i": 1},
        {"p": 5, "i": 0},
        {"p": 5, "i": 1},
        {"p": 5, "i": 2},
        {"p": 0, "i": 0},
        {"p": 0, "i": 1},
    ]


async def test_one_claim_spans_priorities_in_order(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"p": 1}, priority=1)
    await submit(engine, queue_name, {"p": 3}, priority=3)
    await submit(engine, queue_name, {"p": 2}, priority=2)
    jobs = await engine.claim(queue_name, 2)
    assert [payload_of(j) for j in jobs] == [{"p": 3}, {"p": 2}]
    assert [j.priority for j in jobs] == [3, 2]


async def test_many_claims_preserve_fifo(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, *({"i": i} for i in range(30)))
    got = []
    while batch := await engine.claim(queue_name, 4):
        got += [payload_of(j)["i"] for j in batch]
    assert got == list(range(30))


async def test_scheduled_job_is_not_claimable_until_due(engine, queue_name):
    await make_queue(engine, queue_name)
    due = now_ms() + 400
    (sub,) = await submit(engine, queue_name, {"later": 1}, run_at_ms=due)
    assert sub.status == "scheduled"
    job = await engine.get_job(queue_name, sub.id)
    assert job.status == "scheduled" and job.run_at != ""
    assert (await engine.queue_info(queue_name)).counts["scheduled"] == 1
    # Not due, unless this busy machine took 400 ms to get here: the store ran the claim before its answer.
    assert await engine.claim(queue_name, 1) == [] or now_ms() >= due
    await trio.sleep(max(0, due - now_ms()) / 1000 + 0.05)
    # A claim promotes due jobs itself: no maintenance tick needed.
    (job,) = await engine.claim(queue_name, 1)
    assert job.id == sub.id
    await assert_counts_true(engine, queue_name)


async def test_tick_promotes_due_jobs(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name)
    due = now_ms() + 200
    subs = await submit(engine, queue_name, {"a": 1}, {"a": 2}, run_at_ms=due)
    assert await engine.tick(queue_name) == Ticked() or now_ms() >= due  # (the store ticked before its answer)
    await trio.sleep(max(0, due - now_ms()) / 1000 + 0.05)
    ticked = await engine.tick(queue_name)
    promoted, reclaimed, expired = ticked.promoted, ticked.reclaimed, ticked.expired
    assert (promoted, reclaimed, expired) == (2, 0, 0)
    for s in subs:
        job = await engine.get_job(queue_name, s.id)
        assert job.status == "pending" and job.run_at == ""
    truth = await assert_counts_true(engine, queue_name)
    assert truth["pending"] == 2 and truth["scheduled"] == 0


async def test_promoted_job_keeps_its_priority(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"p": 1}, priority=1)
    await submit(engine, queue_name, {"p": 8}, priority=8, run_at_ms=now_ms() + 150)
    await trio.sleep(0.25)
    assert [payload_of(j) for j in await drain(engine, queue_name)] == [{"p": 8}, {"p": 1}]


async def test_run_at_in_the_past_is_pending_at_once(engine, queue_name):
    await make_queue(engine, queue_name)
    (sub,) = await submit(engine, queue_name, {"a": 1}, run_at_ms=now_ms() - 60_000)
    assert sub.status == "pending"


async def test_paused_queue_hands_out_nothing_until_resumed(engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1}, {"a": 2})
    info = await engine.pause(queue_name)
    assert info.paused
    assert await engine.claim(queue_name, 10) == []
    # Submitting to a paused queue still works; the jobs wait.
    await submit(engine, queue_name, {"a": 3})
    assert (await engine.queue_info(queue_name)).counts["pending"] == 3
    info = await engine.resume(queue_name)
    assert not info.paused
    assert [payload_of(j)["a"] for j in await engine.claim(queue_name, 10)] == [1, 2, 3]


async def test_update_queue_changes_settings(engine, queue_name):
    await make_queue(engine, queue_name)
    info = await engine.update_queue(
        queue_name,
        max_retries=7,
        claim_timeout=30,
        description="d",
        dedupe=True,
        retry_delay=0.5,
        retry_delay_max=9,
        retention=60,
    )
    s = info.settings
    assert (s["max_retries"], s["claim_timeout"], s["description"], s["dedupe"]) == (7, 30, "d", True)
    assert (s["retry_delay"], s["retry_delay_max"], s["retention"]) == (0.5, 9, 60)
    assert (await engine.queue_info(queue_name)).settings == s


async def test_claimed_jobs_list_newest_first_in_pages_whatever_their_lease_order(engine, queue_name):
    # Claimed jobs are indexed by the leases zset, in lease-expiry order: listing must still page them by id.
    await make_queue(engine, queue_name, claim_timeout=60)
    subs = await submit(engine, queue_name, *({"i": i} for i in range(7)))
    claimed = await engine.claim(queue_name, 5, "w")
    # Leases in an order unlike the ids' (either way).
    for seconds, job in zip([200, 400, 100, 500, 300], claimed, strict=True):
        await engine.extend(queue_name, job.id, job.lease_id, seconds)
    newest_first = [s.id for s in reversed(subs)]
    claimed_ids = [j.id for j in reversed(claimed)]
    pages, cursor = [], ""
    while True:
        page = await engine.list_jobs(queue_name, "claimed", 2, cursor)
        pages.append([j.id for j in page.jobs])
        if not page.has_more:
            break
        cursor = page.cursor
    assert pages == [claimed_ids[0:2], claimed_ids[2:4], claimed_ids[4:5]]
    # With every status: pending and claimed ids merged, newest first.
    seen, cursor = [], ""
    while True:
        page = await engine.list_jobs(queue_name, "", 3, cursor)
        seen += [j.id for j in page.jobs]
        if not page.has_more:
            break
        cursor = page.cursor
    assert seen == newest_first
    assert (await assert_counts_true(engine, queue_name))["claimed"] == 5


async def test_a_claimed_index_left_by_an_earlier_release_is_ignored_then_dropped(engine, raw, queue_name):
    # Before the leases zset became the claimed jobs' index, claims also kept an idx:claimed: a store written
    # then may still hold one. Nothing reads it, and the queue's next tick deletes it.
    await make_unticked_queue(engine, raw, queue_name)
    await submit(engine, queue_name, {"a": 1}, {"b": 2})
    (job,) = await engine.claim(queue_name, 1, "w")
    stale = f"starq:{{{queue_name}}}:idx:claimed"
    await raw.zadd(stale, {"0191a5b0-0000-7000-8000-000000000000": 0, job.id: 0})
    assert (await assert_counts_true(engine, queue_name))["claimed"] == 1
    await engine.tick(queue_name)
    assert await raw.exists([stale]) == 0
    await engine.complete(queue_name, job.id, job.lease_id)
    assert (await assert_counts_true(engine, queue_name))["claimed"] == 0


def shown(job) -> dict:
    """The job as the API renders it."""
    return orjson.loads(orjson.dumps(job.to_json()))


async def test_claims_and_listings_read_every_field_as_the_record_holds_it(engine, queue_name):
    # Claims, listings and acks come back from the store as JSON text: every kind of character a field may hold
    # (escapes, slashes, non-ASCII, line separators, control characters) must read back exactly.
    odd = 'quote " backslash \\ slash / é € 😀 \u2028 \u2029 tab \t nl \n nul-ish \x01 \x1f end'
    await make_queue(engine, queue_name, max_retries=3)
    (sub,) = await submit(
        engine, queue_name, {"text": odd, "n": [1, 2.5, None, True]}, priority=7,
        key="k/é", unique_key="u\\1", timeout=30, max_retries=2, tags=["t/1", "é"],
    )  # fmt: skip
    (first,) = await engine.claim(queue_name, 1, "w/é")
    await engine.progress(queue_name, first.id, first.lease_id, json.dumps({"at": odd}, ensure_ascii=False))
    await engine.fail(queue_name, first.id, first.lease_id, error=odd)
    await engine.promote(queue_name, sub.id)  # the retry's backoff skipped
    (claimed,) = await engine.claim(queue_name, 1, "w/é")
    stored = await engine.get_job(queue_name, sub.id)
    assert claimed.error == odd and json.loads(claimed.payload)["text"] == odd and claimed.retries == 1
    assert json.loads(claimed.progress)["at"] == odd
    assert claimed.tags == stored.tags and json.loads(claimed.tags) == ["t/1", "é"]
    as_stored = {k: v for k, v in shown(stored).items() if k not in ("history", "dependents")}
    assert shown(claimed) == as_stored
    (listed,) = (await engine.list_jobs(queue_name, "", 10)).jobs
    assert shown(listed) == as_stored
    (outcome,) = await engine.ack(queue_name, [(claimed.id, claimed.lease_id, '{"r": "' + "é/\\\\" + '"}')], [])
    assert (outcome.status, outcome.retries, outcome.error) == ("completed", 1, None)
