"""The background loop every server process runs: promote due jobs, reclaim expired leases, drop old records,
run due schedules, deliver batch callbacks bound for other queues.

Every step is one atomic Lua call per queue, so any number of processes can run this loop at once; running
it in several processes only makes the work prompter. Its cost is O(queues + due work), never O(all jobs), and
the calls for all queues go out pipelined, in one round trip per few hundred queues rather than one per queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

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
            await maintain_once(engine)
            if failing:
                log.info("maintenance resumed")
                failing = False
        except StarqError as exc:
            if not failing:
                log.warning("maintenance paused: %s", exc)
                failing = True
        await trio.sleep(interval)


async def maintain_once(engine: Engine, queues: Sequence[str] | None = None) -> None:
    """One pass over every queue (or those named), until each is caught up. Each call does a bounded chunk of a
    queue's due work (``TICK_LIMIT`` items per kind); a queue with more due is ticked again in the next round,
    with the others that still have more, one chunk each, so a hot queue cannot starve the rest, and requests
    get the store between rounds."""
    reclaimed: dict[str, int] = {}
    pending = list(queues) if queues is not None else await engine.queue_names()
    while pending:
        ticked = await engine.tick_many(pending)
        now_ms = int(time.time() * 1000)
        for queue, done in ticked.items():
            reclaimed[queue] = reclaimed.get(queue, 0) + done.reclaimed
            if done.schedules:
                await schedules.run_due(engine, queue, done.schedules, now_ms)
            if done.outbox:
                await engine.deliver_outbox(queue, done.outbox)
        pending = [queue for queue, done in ticked.items() if done.more]
        await trio.lowlevel.checkpoint()
    for queue, count in reclaimed.items():
        if count:
            log.info("queue %s: %d expired lease(s) reclaimed", queue, count)
