"""Opening the Redis client, with the two coredis 6.9 pool fixes Starq relies on.

coredis 6.9 loses a pool slot for good whenever a leased connection becomes unusable (a server restart, a
killed connection, a stream timeout), and a task cancelled while waiting for a slot swallows the next
release. After a Redis restart the first bug alone shrinks the pool until every command hangs. Starq never
cancels an in-flight command from a request, but store faults happen, so the pool must survive them:
``SlotKeepingPool`` gives the slot back and ``_get_forgetting_cancelled`` removes a cancelled waiter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import coredis._concurrency
from anyio import Event
from coredis.retry import NoRetryPolicy

# Bounds on every store round trip: a stalled store turns into a 503, never into a hung request.
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
POOL_TIMEOUT = 10.0


class SlotKeepingPool(coredis.ConnectionPool):
    """A pool whose size never shrinks when a connection dies."""

    def release(self, connection):  # type: ignore[override]
        self.statistics.connection_released(connection)
        if connection.usable:
            self._available_connections.put_nowait(connection)
        else:
            connection.invalidate()
            # An empty slot: the next get_connection() opens a fresh connection in its place.
            self._available_connections.put_nowait(None)


async def _get_forgetting_cancelled(self):  # pragma: no cover - exercised through the pool
    async with self._lock:
        while self.empty():
            ready = Event()
            self._getters.append(ready)
            try:
                await ready.wait()
            except BaseException:
                # Cancelled while waiting: leave no dead Event behind to swallow the next release.
                if ready in self._getters:
                    self._getters.remove(ready)
                raise
        item = self._queue.pop()
        if self._putters and not self.full():
            self._putters.popleft().set()
        return item


def _install_queue_fix() -> None:
    if coredis.__version__.split(".")[:2] != ["6", "9"]:
        # The fix replaces a private method; a newer coredis may have fixed it or changed it.
        return
    coredis._concurrency.Queue.get = _get_forgetting_cancelled  # type: ignore[method-assign]


_install_queue_fix()


@asynccontextmanager
async def open_redis(url: str, *, max_connections: int = 16) -> AsyncIterator[coredis.Redis]:
    """A decoded-string Redis client over a bounded pool, with no client-side retries.

    Retries are off because coredis re-sends a write after a timeout without knowing whether it ran (one
    XADD became three in our tests); Starq's writes are made idempotent instead and errors reach the caller.
    """
    pool = SlotKeepingPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT,
        stream_timeout=COMMAND_TIMEOUT,
        connect_timeout=CONNECT_TIMEOUT,
        decode_responses=True,
    )
    client = coredis.Redis(connection_pool=pool, retry_policy=NoRetryPolicy())
    async with client:
        yield client
