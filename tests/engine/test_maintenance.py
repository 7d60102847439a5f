"""The maintenance loop ticks every queue in pipelined round trips, with the same effect as one tick each."""

from __future__ import annotations

import trio

from engine.helpers import make_queue, make_unticked_queue, now_ms, submit
from starq.server import maintenance
from starq.server.engine import engine as engine_module
from starq.server.engine.engine import Ticked


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
    assert ticked == {
        due: Ticked(promoted=1),
        leased: Ticked(reclaimed=1),
        idle: Ticked(),
        deleting: Ticked(),
        missing: Ticked(),
    }
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
