"""Flow control in the engine: the rate limit, the queue's concurrency and per-key concurrency (ordering)."""

from __future__ import annotations

import random
from datetime import datetime

import trio
import trio.lowlevel

from engine.helpers import assert_counts_true, make_queue, now_ms, payload_of, submit, wait_until


async def test_rate_limit_hands_out_at_most_max_per_window_and_says_when_it_ends(engine, queue_name):
    await make_queue(engine, queue_name, rate_limit={"max": 3, "per_ms": 400})
    await submit(engine, queue_name, *({"i": i} for i in range(10)))
    first = await engine.claim(queue_name, 10)
    assert len(first) == 3 and first.rate_limited_ms == 0
    refused = await engine.claim(queue_name, 10)
    assert refused == [] and 0 < refused.rate_limited_ms <= 400
    await trio.sleep(refused.rate_limited_ms / 1000 + 0.05)
    again = await engine.claim(queue_name, 2)
    assert len(again) == 2
    assert len(await engine.claim(queue_name, 10)) == 1  # the window's third
    await assert_counts_true(engine, queue_name)


async def test_the_window_starts_at_the_first_hand_out_not_at_a_clock_boundary(engine, queue_name):
    await make_queue(engine, queue_name, rate_limit={"max": 2, "per_ms": 300})
    await submit(engine, queue_name, *({"i": i} for i in range(20)))
    # Each hand-out as the store timed it (its claimed_at): no client clock or latency in the check.
    handed: list[int] = []
    deadline = now_ms() + 1500
    while now_ms() < deadline:
        for job in await engine.claim(queue_name, 1):
            handed.append(iso_ms(job.claimed_at))
        await trio.sleep(0.01)
    # The windows as the store made them: each starts at the first hand-out once the previous one has ended
    # (10 ms allowed for the store's time between a call's start, when it finds the window over, and its clock
    # reading). At most 2 in each; a clock-aligned window would let up to 4 into one of these.
    windows: list[int] = []
    start = None
    for at in handed:
        if start is None or at >= start + 300 - 10:
            start = at
            windows.append(0)
        windows[-1] += 1
    assert max(windows) <= 2, (windows, handed)
    assert len(handed) >= 6


def iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def test_removing_the_rate_limit_lets_claims_through(engine, queue_name):
    await make_queue(engine, queue_name, rate_limit={"max": 1, "per_ms": 60_000})
    await submit(engine, queue_name, {"a": 1}, {"a": 2})
    assert len(await engine.claim(queue_name, 5)) == 1
    assert (await engine.claim(queue_name, 5)).rate_limited_ms > 50_000
    info = await engine.update_queue(queue_name, rate_limit=None)
    assert info.settings["rate_limit"] is None
    assert len(await engine.claim(queue_name, 5)) == 1


async def test_concurrency_caps_claimed_jobs_across_the_queue(engine, queue_name):
    await make_queue(engine, queue_name, concurrency=2)
    await submit(engine, queue_name, *({"i": i} for i in range(5)))
    a = await engine.claim(queue_name, 5, "w1")
    assert len(a) == 2 and a.held
    b = await engine.claim(queue_name, 5, "w2")
    assert b == [] and b.held
    await engine.complete(queue_name, a[0].id, a[0].lease_id)
    c = await engine.claim(queue_name, 5, "w2")
    assert len(c) == 1
    assert (await engine.queue_info(queue_name)).counts["claimed"] == 2
    await assert_counts_true(engine, queue_name)


async def test_key_concurrency_one_hands_a_keys_jobs_out_one_at_a_time_in_order(engine, queue_name):
    await make_queue(engine, queue_name, key_concurrency=1, retry_delay=0)
    await submit(engine, queue_name, *({"k": "a", "n": n} for n in range(3)), key="a")
    await submit(engine, queue_name, *({"k": "b", "n": n} for n in range(2)), key="b")
    await submit(engine, queue_name, {"k": None, "n": 0})
    first = await engine.claim(queue_name, 10)
    # One of each key, and the keyless job: nothing else of a or b until their active job is done.
    assert sorted((payload_of(j)["k"] or "-", payload_of(j)["n"]) for j in first) == [("-", 0), ("a", 0), ("b", 0)]
    assert await engine.claim(queue_name, 10) == []
    a0 = next(j for j in first if payload_of(j)["k"] == "a")
    # A failed job of the key keeps its turn: it is retried before the key's next job is let in.
    await engine.fail(queue_name, a0.id, a0.lease_id, "boom")
    (retried,) = await engine.claim(queue_name, 10)
    assert retried.id == a0.id
    await engine.complete(queue_name, retried.id, retried.lease_id)
    (a1,) = await engine.claim(queue_name, 10)
    assert payload_of(a1) == {"k": "a", "n": 1}
    info = await engine.queue_info(queue_name)
    assert info.counts["pending"] == 2  # a's and b's next jobs wait for their turn, as pending
    await assert_counts_true(engine, queue_name)


async def test_a_key_waiting_job_can_be_cancelled_and_the_line_moves_on(engine, queue_name):
    await make_queue(engine, queue_name, key_concurrency=1)
    subs = await submit(engine, queue_name, *({"n": n} for n in range(3)), key="k")
    (first,) = await engine.claim(queue_name, 5)
    await engine.cancel(queue_name, subs[1].id)  # waiting in the key's line
    await engine.complete(queue_name, first.id, first.lease_id)
    (third,) = await engine.claim(queue_name, 5)
    assert third.id == subs[2].id
    await engine.cancel(queue_name, third.id)  # claimed: cancelled, and the key's slot is free again
    assert (await engine.queue_info(queue_name)).counts == {
        "waiting": 0, "pending": 0, "scheduled": 0, "claimed": 0, "completed": 1, "failed": 0, "cancelled": 2,
    }  # fmt: skip
    await submit(engine, queue_name, {"n": 9}, key="k")
    assert len(await engine.claim(queue_name, 5)) == 1


async def test_raising_key_concurrency_lets_the_waiting_jobs_in(engine, queue_name):
    await make_queue(engine, queue_name, key_concurrency=1)
    await submit(engine, queue_name, *({"n": n} for n in range(4)), key="k")
    assert len(await engine.claim(queue_name, 10)) == 1
    await engine.update_queue(queue_name, key_concurrency=3)
    assert len(await engine.claim(queue_name, 10)) == 2
    await engine.update_queue(queue_name, key_concurrency=0)
    assert len(await engine.claim(queue_name, 10)) == 1
    await assert_counts_true(engine, queue_name)


async def test_a_delayed_job_of_a_busy_key_waits_for_its_turn_when_due(engine, queue_name):
    await make_queue(engine, queue_name, key_concurrency=1)
    (busy,) = await submit(engine, queue_name, {"n": 0}, key="k")
    await submit(engine, queue_name, {"n": 1}, key="k", run_at_ms=now_ms() + 100)
    (held,) = await engine.claim(queue_name, 5)
    await trio.sleep(0.2)
    assert await engine.claim(queue_name, 5) == []  # due, but its key is busy: it waits in line, pending
    assert (await engine.queue_info(queue_name)).counts["pending"] == 1
    await engine.complete(queue_name, held.id, held.lease_id)
    (nxt,) = await engine.claim(queue_name, 5)
    assert payload_of(nxt) == {"n": 1} and held.id == busy.id


async def test_per_key_order_holds_under_concurrent_workers_with_random_failures(engine, queue_name):
    """Six workers, 30 keys, jobs failing at random: each key's jobs complete in submission order, every job
    completes exactly once, and no two jobs of one key are ever claimed at once."""
    await make_queue(engine, queue_name, key_concurrency=1, retry_delay=0, max_retries=50)
    keys = [f"k{i}" for i in range(30)]
    for n in range(8):
        for key in keys:
            await submit(engine, queue_name, {"key": key, "n": n}, key=key)
    completed: dict[str, list[int]] = {key: [] for key in keys}
    in_hand: dict[str, int] = dict.fromkeys(keys, 0)
    rng = random.Random(7)

    async def worker(name: str) -> None:
        idle = 0
        while idle < 20:
            jobs = await engine.claim(queue_name, 3, name)
            if not jobs:
                idle += 1
                await trio.sleep(0.01)
                continue
            idle = 0
            for job in jobs:
                key = payload_of(job)["key"]
                in_hand[key] += 1
                assert in_hand[key] == 1, f"two jobs of {key} claimed at once"
            for job in jobs:
                body = payload_of(job)
                await trio.lowlevel.checkpoint()
                in_hand[body["key"]] -= 1
                if rng.random() < 0.3:
                    await engine.fail(queue_name, job.id, job.lease_id, "random failure")
                else:
                    await engine.complete(queue_name, job.id, job.lease_id)
                    completed[body["key"]].append(body["n"])

    async with trio.open_nursery() as nursery:
        for w in range(6):
            nursery.start_soon(worker, f"w{w}")
    assert all(done == list(range(8)) for done in completed.values()), completed
    counts = await assert_counts_true(engine, queue_name)
    assert counts["completed"] == 240 and counts["pending"] == counts["claimed"] == 0


async def test_a_long_poll_on_a_rate_limited_queue_is_served_when_the_window_ends(engine, queue_name, nursery):
    from starq.server.claims import Ledger
    from starq.server.hub import Hub

    await make_queue(engine, queue_name, rate_limit={"max": 1, "per_ms": 500})
    await submit(engine, queue_name, {"a": 1}, {"a": 2})
    hub = Hub(engine)
    await nursery.start(hub.run)
    broker = hub.claims
    started = trio.current_time()  # the window starts after this: at the first hand-out, in the store
    assert len(await broker.claim(queue_name, 5, 0, "w", Ledger())) == 1
    got = await broker.claim(queue_name, 5, 3000, "w", Ledger())
    waited = trio.current_time() - started
    # Served once the window has ended (≥ 500 ms after the first hand-out; 5 ms for the store's whole
    # milliseconds), and by the window's end rather than the 3 s block running out (room for a busy machine).
    assert len(got) == 1 and 0.495 <= waited < 2.5, waited
    await wait_until(lambda: broker.waiting == 0)
