"""What the parts of ``hub.Hub`` share: parked claims, outcome waiters and event feeds each host their background
tasks (a dispatcher per queue, a read per watched job, a feed per queue) in a nursery of their own, and each ends
what waits on it at shutdown."""

from __future__ import annotations

import trio

from .engine.engine import Engine


class HubPart:
    """Run it with ``await nursery.start(part.run)``; ``close`` (which a part extends to answer its waiters) marks
    it ``closed``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._nursery: trio.Nursery | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once shutdown began."""
        return self._closed

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Hosts the part's tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def close(self) -> None:
        self._closed = True
