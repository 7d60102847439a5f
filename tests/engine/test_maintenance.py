"""The maintenance loop ticks every queue in pipelined round trips, with the same effect as one tick each."""

from __future__ import annotations

import trio

from engine.helpers import make_queue, make_unticked_queue, now_ms, submit
from starq.server import maintenance
from starq.server.engine import engine as engine_module


async def test_tick_many_does_each_queues_due_work(engine, queue_name, raw, monkeypatch):
    monkeypatch.setattr(engine_module, "TICK_PIPELINE", 2)  # several round trips for five queues
    due, leased, idle, deleting = (f"{queue_name}-{k}" for k in ("due", "leased", "idle", "deleting"))
    for name in (due, leased, idle, deleting):
        await make_unticked_queue(engine, raw, name)
    await submit(engine, due, {"a": 1}, run_at_ms=now_ms() + 50)
    await submit(engine, leased, {"a": 1})
    (job,) = await engine.claim(leased, 1)
    await engine.extend(leased, job.id, job.lease_id, 0.05)
    await submit(engine, deleting, {"a": 1})
    await raw.hset(f"starq:{{{deleting}}}:meta", {"deleting": "1"})
    await trio.sleep(0.1)
    missing = f"{queue_name}-never-created"
    ticked = await engine.tick_many([due, leased, idle, deleting, missing])
    work = {queue: (t.promoted, t.reclaimed, t.expired, t.more) for queue, t in ticked.items()}
    assert work == {
        due: (1, 0, 0, False),
        leased: (0, 1, 0, False),
        idle: (0, 0, 0, False),
        deleting: (0, 0, 0, False),
        missing: (0, 0, 0, False),
    }
    assert ticked[due].lag_ms == {"promote": 0, "reclaim": 0, "expire": 0}
    assert (await engine.get_job(leased, job.id)).status == "pending"
    assert not await raw.keys(f"starq:{{{deleting}}}*")
    assert await engine.tick_many([]) == {}


async def test_maintenance_reclaims_expired_leases(engine, queue_name):
    await make_queue(engine, queue_name, claim_timeout=1)
    await submit(engine, queue_name, {"a": 1})
    (job,) = await engine.claim(queue_name, 1)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: maintenance.maintain_forever(engine, interval=0.05, task_status=task_status)
        )
        with trio.fail_after(10):
            while (await engine.get_job(queue_name, job.id)).status != "pending":
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


async def test_one_pass_catches_up_with_more_due_work_than_one_tick_does(engine, queue_name, raw, monkeypatch):
    """Work due beyond one tick's limit is done in the same pass, in chunks: promotion, reclaim and retention."""
    monkeypatch.setattr(engine_module, "TICK_LIMIT", 50)
    await make_unticked_queue(engine, raw, queue_name)
    await engine.update_queue(queue_name, retention=1, claim_timeout=1)
    await submit(engine, queue_name, *({"i": i} for i in range(230)))
    finished = await engine.claim(queue_name, 100)
    acked = await engine.ack(queue_name, [(j.id, j.lease_id, "{}") for j in finished], [])
    assert all(a.error is None for a in acked)
    held = await engine.claim(queue_name, 100)
    await submit(engine, queue_name, *({"later": i} for i in range(170)), run_at_ms=now_ms() + 100)
    await trio.sleep(1.2)  # the records' retention, the leases and the delays have all passed
    before = await engine.tick(queue_name)
    assert before.more and before.lag_ms["expire"] > 0
    await maintenance.maintain_once(engine, [queue_name])
    info = await engine.queue_info(queue_name)
    assert info.counts["completed"] == 0 and info.counts["claimed"] == 0 and info.counts["scheduled"] == 0
    assert info.counts["pending"] == 30 + len(held) + 170  # never claimed, reclaimed, promoted
    after = await engine.tick(queue_name)
    assert not after.more and after.lag_ms == {"promote": 0, "reclaim": 0, "expire": 0}


async def test_the_retention_removes_finished_records_with_every_trace(engine, queue_name, raw):
    """The tick reads a finished record's few fields that may need undoing (tags, unique key, dependents) and
    deletes all the due records at once: nothing of them may stay behind."""
    await make_unticked_queue(engine, raw, queue_name)
    await engine.update_queue(queue_name, retention=1)
    (first,) = await submit(engine, queue_name, {"a": 1}, tags=["t"], unique_key="u")
    (second,) = await submit(engine, queue_name, {"b": 2}, tags=["t"], depends_on=[first.id])
    await submit(engine, queue_name, {"c": 3}, unique_key="v")
    a, c = await engine.claim(queue_name, 2, "w")
    await engine.complete(queue_name, a.id, a.lease_id)
    await engine.fail(queue_name, c.id, c.lease_id, "no", retry=False)
    (b,) = await engine.claim(queue_name, 1, "w")
    assert b.id == second.id  # released by its dependency's completion
    await engine.complete(queue_name, b.id, b.lease_id)
    await trio.sleep(1.2)  # past the retention
    assert (await engine.tick(queue_name)).expired == 3
    prefix = f"starq:{{{queue_name}}}:"
    keys = set(await raw.keys(prefix + "*"))
    assert not {k for k in keys if k.startswith((prefix + "job:", prefix + "tag:", prefix + "dependents:"))}
    for index in ("idx:completed", "idx:failed", "expiry"):
        assert await raw.zcard(prefix + index) == 0
    assert await raw.hlen(prefix + "uniq") == 0 and await raw.zcard(prefix + "uniq_until") == 0
    info = await engine.queue_info(queue_name)
    assert sum(info.counts.values()) == 0
