"""The background loop every server process runs: promote due jobs, reclaim expired leases, drop old records,
run due schedules, deliver batch callbacks bound for other queues.

Every step is one atomic Lua call per queue, so any number of processes can run this loop at once; running
it in several processes only makes the work prompter. Its cost is O(queues + due work), never O(all jobs), and
the calls for all queues go out pipelined, in one round trip per few hundred queues rather than one per queue.
"""

from __future__ import annotations

import logging
import time

import trio

from starq.worker_kit.errors import StarqError

from . import schedules
from .engine.engine import Engine

log = logging.getLogger("starq.maintenance")

# Leases are reclaimed within about this long after they expire.
TICK_SECONDS = 0.5


async def maintain_forever(
    engine: Engine, *, interval: float = TICK_SECONDS, task_status=trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    failing = False
    while True:
        try:
            ticked = await engine.tick_many(await engine.queue_names())
            now_ms = int(time.time() * 1000)
            for queue, done in ticked.items():
                if done.reclaimed:
                    log.info("queue %s: %d expired lease(s) reclaimed", queue, done.reclaimed)
                if done.schedules:
                    await schedules.run_due(engine, queue, done.schedules, now_ms)
                if done.outbox:
                    await engine.deliver_outbox(queue, done.outbox)
            if failing:
                log.info("maintenance resumed")
                failing = False
        except StarqError as exc:
            if not failing:
                log.warning("maintenance paused: %s", exc)
                failing = True
        await trio.sleep(interval)
