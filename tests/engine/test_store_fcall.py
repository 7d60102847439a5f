"""The lean FCALL path of ``store``: the same replies and errors as coredis' own, and the pool keeps every
slot whether callers finish, fail or are cancelled mid-call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis.exceptions
import pytest
import trio

from engine.helpers import make_queue, submit
from starq.server.engine.engine import LIBRARY
from starq.server.engine.store import SlotKeepingPool, fcall, open_redis


def _idle(pool) -> int:
    """Live connections waiting in the pool (empty slots not counted)."""
    return sum(1 for c in pool._available_connections._queue if c is not None)


async def test_replies_match_coredis_fcall(redis_url, engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"a": 1})
    async with open_redis(redis_url, max_connections=2) as redis:
        await redis.function_load(LIBRARY, replace=True)
        key = [f"starq:{{{queue_name}}}:meta"]
        ours = await fcall(redis, "starq_queue_info", key, [], readonly=True)
        theirs = await redis.fcall_ro("starq_queue_info", keys=key, args=[])
        assert ours == theirs
        assert any(isinstance(v, str) for v in ours)  # decoded, as the client's other replies


async def test_errors_are_raised_as_coredis_raises_them(redis_url):
    async with open_redis(redis_url, max_connections=2) as redis:
        await redis.function_load(LIBRARY, replace=True)
        with pytest.raises(coredis.exceptions.ResponseError, match=r"^NOQUEUE"):
            await fcall(redis, "starq_claim", ["starq:{no-such-queue}:meta"], ["1", "t-", "w"])
        with pytest.raises(coredis.exceptions.ResponseError, match="Function not found"):
            await fcall(redis, "starq_nothing", ["starq:{x}:meta"], [])
        # The connection that carried the errors is back in the pool and still answers.
        assert await redis.ping()


async def test_cancelled_callers_keep_every_slot(redis_url, engine, queue_name):
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, *({"i": i} for i in range(40)))
    async with open_redis(redis_url, max_connections=2) as redis:
        await redis.function_load(LIBRARY, replace=True)
        key = [f"starq:{{{queue_name}}}:meta"]

        async def claim_one():
            await fcall(redis, "starq_claim", key, ["1", "t-", "w"])

        # 20 callers on 2 connections, cancelled at every stage: waiting for a slot, waiting for a reply.
        for delay in (0, 0.0005, 0.002):
            with trio.move_on_after(delay):
                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(claim_one)
        # Every slot is back: 2 callers at once get through, and more than 2 queue up and get through.
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for _ in range(6):
                    nursery.start_soon(claim_one)
        pool = redis.connection_pool
        assert isinstance(pool, SlotKeepingPool)
        assert _idle(pool) <= 2 and len(pool._available_connections._queue) == 2


async def test_waiters_keep_their_turn(redis_url):
    """With callers waiting for a slot, a new caller does not take an idle connection past them."""
    async with open_redis(redis_url, max_connections=1) as redis:
        pool = redis.connection_pool
        assert isinstance(pool, SlotKeepingPool)
        await redis.ping()
        assert pool.lease_ready() is not None  # idle and nobody waiting: served at once
        # The one connection is leased now; a waiter parks for it.
        async with trio.open_nursery() as nursery:
            got = []

            async def wait_for_slot():
                got.append(await pool.get_connection())

            nursery.start_soon(wait_for_slot)
            await trio.sleep(0.05)
            assert pool.lease_ready() is None  # empty pool
            leased = pool._online_connections.copy().pop()
            pool.release(leased)  # wakes the waiter, which has not run yet
            assert pool.lease_ready() is None  # the waiter's turn, not ours
        assert len(got) == 1
        pool.release(got[0])
        assert await redis.ping()


@asynccontextmanager
async def _client(redis_url: str, timer: bool) -> AsyncIterator[coredis.Redis[str]]:
    """A one-connection client with a 0.4 s timeout: ``open_redis``'s, whose replies the pool's ``ReplyTimer``
    times, or a plain coredis client's, whose replies ``fcall`` times itself."""
    if timer:
        async with open_redis(redis_url, max_connections=1, timeout=0.4) as redis:
            pool = redis.connection_pool
            assert isinstance(pool, SlotKeepingPool) and pool.reply_timer is not None
            assert isinstance(redis, coredis.Redis)
            yield redis
    else:
        async with coredis.Redis.from_url(
            redis_url, max_connections=1, stream_timeout=0.4, decode_responses=True
        ) as redis:
            yield redis


@pytest.mark.parametrize("timer", [True, False], ids=["reply-timer", "own-scope"])
async def test_a_late_reply_times_out_at_its_deadline_and_is_dropped(redis_url, engine, queue_name, timer):
    """A call its store does not answer in time fails at its deadline (as coredis' own timeout does); the late
    reply is read and dropped, so the next call on the connection gets its own."""
    await make_queue(engine, queue_name)
    key = [f"starq:{{{queue_name}}}:meta"]
    async with (
        _client(redis_url, timer) as redis,
        coredis.Redis.from_url(redis_url, decode_responses=True) as admin,
    ):
        await redis.function_load(LIBRARY, replace=True)
        before = await fcall(redis, "starq_queue_info", key, [], readonly=True)
        await admin.client_pause(700)  # the store answers nobody for 0.7 s
        started = trio.current_time()
        with pytest.raises(TimeoutError, match=r"^FCALL_RO timed out after 0\.4 seconds$"):
            await fcall(redis, "starq_queue_info", key, [], readonly=True)
        assert 0.4 <= trio.current_time() - started < 0.6
        with trio.fail_after(5):
            # Sent on the same connection behind the timed-out call, during the pause: its own reply comes
            # (within its deadline), not that one's.
            assert (await fcall(redis, "starq_claim", key, ["1", "t-", "w"]))[:2] == [0, 0]
            after = await fcall(redis, "starq_queue_info", key, [], readonly=True)
            assert after[0] == before[0] == "created_at"  # a queue's info, not a claim's reply


async def test_the_reply_timer_adds_nothing_to_what_the_block_raises(redis_url):
    """coredis' pool hands on what the client's block raises in one ExceptionGroup; the reply timer runs beside
    the block, not in a nursery around it, so it adds no second level of grouping."""
    with pytest.raises(BaseExceptionGroup) as caught:
        async with open_redis(redis_url) as redis:
            pool = redis.connection_pool
            raise LookupError("raised in the block")
    assert [(type(e), str(e)) for e in caught.value.exceptions] == [(LookupError, "raised in the block")]
    assert isinstance(pool, SlotKeepingPool) and pool.reply_timer is None
