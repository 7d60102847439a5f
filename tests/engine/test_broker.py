"""The long-poll broker on a real store: exactly-once delivery, arrival order, cross-process wake-ups,
cancel safety and shutdown. These drive ``ClaimBroker`` (through ``Hub``) and ``Ledger`` the way the HTTP layer does."""

from __future__ import annotations

import random

import coredis
import pytest
import trio

from engine.helpers import assert_counts_true, make_queue, payload_of, submit, wait_until
from starq.server import claims
from starq.server.claims import Ledger
from starq.server.engine.engine import open_engine
from starq.server.hub import Hub
from starq.worker_kit.errors import QueueNotFound


@pytest.fixture
async def broker(engine, nursery):
    hub = Hub(engine)
    await nursery.start(hub.run)
    broker = hub.claims
    yield broker
    broker.close()


async def claim_like_a_request(broker, engine, queue, count, block_ms, worker="", got=None):
    """One claim as the HTTP layer makes it: a ledger that is marked delivered once the jobs are handed over,
    and released (shielded) whatever ends the request early."""
    ledger = Ledger()
    try:
        jobs = await broker.claim(queue, count, block_ms, worker, ledger)
        if got is not None:
            got.extend(jobs)
        ledger.delivered()
        return jobs
    finally:
        await ledger.release_undelivered(engine)


async def test_claim_returns_at_once_when_jobs_are_ready(broker, engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1}, {"a": 2})
    with trio.fail_after(5):
        jobs = await claim_like_a_request(broker, engine, queue_name, 5, 30_000)
    assert [payload_of(j) for j in jobs] == [{"a": 1}, {"a": 2}]


async def test_claim_without_jobs_returns_empty_after_block_ms(broker, engine, queue_name):
    await make_queue(engine, queue_name)
    start = trio.current_time()
    assert await claim_like_a_request(broker, engine, queue_name, 1, 200) == []
    assert trio.current_time() - start >= 0.19
    assert broker.waiting == 0


async def test_many_concurrent_claimers_get_every_job_exactly_once(broker, engine, queue_name):
    await make_queue(engine, queue_name)
    got: list = []
    total = 300

    async def worker(n):
        while True:
            jobs = await claim_like_a_request(broker, engine, queue_name, random.randint(1, 5), 500, f"w{n}", got)
            if not jobs:
                return
            for job in jobs:
                await engine.complete(queue_name, job.id, job.lease_id)

    async with trio.open_nursery() as nursery:
        for n in range(30):
            nursery.start_soon(worker, n)
        for start in range(0, total, 50):
            await submit(engine, queue_name, *({"i": i} for i in range(start, start + 50)))
            await trio.sleep(0.01)
    ids = [j.id for j in got]
    assert len(ids) == total and len(set(ids)) == total
    assert sorted(payload_of(j)["i"] for j in got) == list(range(total))
    truth = await assert_counts_true(engine, queue_name)
    assert truth["completed"] == total


async def test_waiters_are_served_in_arrival_order(broker, engine, queue_name):
    await make_queue(engine, queue_name)
    served: list[str] = []

    async def waiter(name):
        jobs = await claim_like_a_request(broker, engine, queue_name, 1, 20_000)
        served.append(name)
        assert len(jobs) == 1

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(waiter, f"w{i}")
            await wait_until(lambda i=i: broker.waiting == i + 1)
        for i in range(5):
            await submit(engine, queue_name, {"i": i})
            await wait_until(lambda i=i: len(served) == i + 1)
    assert served == [f"w{i}" for i in range(5)]


async def test_a_new_claim_does_not_jump_the_line(broker, engine, queue_name):
    """With waiters parked, a fresh claim queues behind them rather than taking the next job first."""
    await make_queue(engine, queue_name)
    order: list[str] = []

    async def waiter(name):
        await claim_like_a_request(broker, engine, queue_name, 1, 20_000)
        order.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "first")
        await wait_until(lambda: broker.waiting == 1)
        nursery.start_soon(waiter, "second")
        await wait_until(lambda: broker.waiting == 2)
        await submit(engine, queue_name, {"a": 1}, {"a": 2})
    assert order == ["first", "second"]


async def test_submit_through_another_engine_wakes_the_waiter_by_notification(
    broker, engine, queue_name, redis_url, monkeypatch
):
    """Another process's submit reaches this process's waiter through pub/sub, not the safety poll: with the
    safety poll pushed out to a minute the waiter is still woken."""
    monkeypatch.setattr(claims, "SAFETY_POLL_SECONDS", 60.0)
    await make_queue(engine, queue_name)
    got: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(claim_like_a_request, broker, engine, queue_name, 1, 30_000, "", got)
        await wait_until(lambda: broker.waiting == 1)
        async with open_engine(redis_url) as other:
            await submit(other, queue_name, {"from": "elsewhere"})
        with trio.fail_after(10):
            await wait_until(lambda: len(got) == 1, timeout=10)
    assert payload_of(got[0]) == {"from": "elsewhere"}


async def test_cancelled_claimers_lose_no_job_and_strand_none(broker, engine, queue_name):
    """Claimers hang up at random moments of their long-polls while jobs flow. Afterwards every job was either
    delivered or is claimable at once (claim_timeout is 10 minutes, so a stranded job would show)."""
    await make_queue(engine, queue_name, claim_timeout=600)
    rng = random.Random(7)
    delivered: list = []
    total = 200

    async def impatient(n):
        for _ in range(30):
            with trio.move_on_after(rng.uniform(0.001, 0.05)):
                await claim_like_a_request(broker, engine, queue_name, rng.randint(1, 3), 10_000, f"w{n}", delivered)

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(impatient, n)
        for start in range(0, total, 10):
            await submit(engine, queue_name, *({"i": i} for i in range(start, start + 10)))
            await trio.sleep(rng.uniform(0, 0.01))
    info = await engine.queue_info(queue_name)
    assert info.counts["claimed"] == len(delivered)
    rest = []
    while batch := await engine.claim(queue_name, 100):
        rest += batch
    assert len(delivered) + len(rest) == total
    assert sorted(payload_of(j)["i"] for j in delivered + rest) == list(range(total))
    assert broker.waiting == 0


async def test_close_answers_waiters_with_no_jobs(engine, queue_name, nursery):
    await make_queue(engine, queue_name)
    hub = Hub(engine)
    await nursery.start(hub.run)
    broker = hub.claims
    answers: list = []

    async def waiter():
        answers.append(await claim_like_a_request(broker, engine, queue_name, 1, 60_000))

    async with trio.open_nursery() as inner:
        for _ in range(50):
            inner.start_soon(waiter)
        await wait_until(lambda: broker.waiting == 50)
        broker.close()  # synchronous: every parked claim is answered by this call alone
    assert answers == [[]] * 50
    # After close, a claim never parks.
    with trio.fail_after(5):
        assert await claim_like_a_request(broker, engine, queue_name, 1, 60_000) == []
    await submit(engine, queue_name, {"a": 1})
    assert (await engine.queue_info(queue_name)).counts["pending"] == 1


async def test_waiters_cancelled_in_the_same_instant_as_close_are_answered_once(engine, queue_name, nursery):
    """Waiters are woken by rescheduling their tasks, which must happen exactly once per parked waiter: half
    are cancelled and ``close()`` runs right after, with no checkpoint in between, so the cancelled ones must
    have left their line already when ``close()`` wakes the rest."""
    await make_queue(engine, queue_name)
    hub = Hub(engine)
    await nursery.start(hub.run)
    broker = hub.claims
    answers: list = []
    scopes = [trio.CancelScope() for _ in range(40)]

    async def waiter(scope):
        with scope:
            answers.append(await claim_like_a_request(broker, engine, queue_name, 1, 60_000))

    async with trio.open_nursery() as inner:
        for scope in scopes:
            inner.start_soon(waiter, scope)
        await wait_until(lambda: broker.waiting == 40)
        for scope in scopes[::2]:
            scope.cancel()
        assert broker.waiting == 20  # they left at the moment of cancellation
        broker.close()
    assert answers == [[]] * 20
    assert broker.waiting == 0


async def test_deleting_the_queue_ends_its_waiters(broker, engine, queue_name):
    await make_queue(engine, queue_name)
    errors: list = []

    async def waiter():
        try:
            await claim_like_a_request(broker, engine, queue_name, 1, 60_000)
        except QueueNotFound as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(waiter)
        await wait_until(lambda: broker.waiting == 3)
        with trio.fail_after(5):
            await engine.delete_queue(queue_name)
    assert len(errors) == 3


async def test_paused_queue_keeps_waiters_waiting_and_resume_wakes_them(broker, engine, queue_name, monkeypatch):
    monkeypatch.setattr(claims, "SAFETY_POLL_SECONDS", 60.0)
    await make_queue(engine, queue_name)
    await engine.pause(queue_name)
    await submit(engine, queue_name, {"a": 1})
    got: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(claim_like_a_request, broker, engine, queue_name, 1, 30_000, "", got)
        await wait_until(lambda: broker.waiting == 1)
        await trio.sleep(0.2)
        assert got == []
        await engine.resume(queue_name)
        await wait_until(lambda: len(got) == 1, timeout=10)


async def _fcalls(redis_url: str) -> int:
    async with coredis.Redis.from_url(redis_url, decode_responses=True) as r:
        stats = await r.info("commandstats")
    fcall = stats.get("cmdstat_fcall", {})  # absent until the first call
    assert isinstance(fcall, dict), fcall
    return int(fcall.get("calls", 0))


async def test_a_burst_of_long_polls_parks_without_a_store_call_each(broker, engine, queue_name, redis_url):
    """Thousands of workers reconnecting at once: only the first few claims try the store; the others park at once
    and the dispatcher claims for them, so they are parked (not answered 503 behind a queue of store calls), and
    every one of them is served exactly once when jobs come."""
    await make_queue(engine, queue_name)
    burst = 10 * claims.FIRST_TRIES
    got: list = []
    before = await _fcalls(redis_url)
    async with trio.open_nursery() as nursery:
        for _ in range(burst):
            nursery.start_soon(claim_like_a_request, broker, engine, queue_name, 1, 20_000, "", got)
        await wait_until(lambda: broker.waiting == burst)
        # The first tries, and the dispatcher's claim for the head (none for the others: the queue was empty).
        assert await _fcalls(redis_url) - before <= claims.FIRST_TRIES + 2
        await submit(engine, queue_name, *({"i": i} for i in range(burst)))
    assert sorted(payload_of(j)["i"] for j in got) == list(range(burst))
    assert broker.waiting == 0
