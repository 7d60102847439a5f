"""Helpers of the worker kit tests: the dev key, a retry policy that does not make failure tests wait, and polling
for a condition."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from starq.worker_kit import Backoff, RetryPolicy

KEY = "dev-key"
FAST_RETRY = RetryPolicy(attempts=3, backoff=Backoff(0.02, 0.1))


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0, step: float = 0.05) -> None:
    """Polls ``predicate`` until it is true; fails the test after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while not await predicate():
            await trio.sleep(step)
        return
    raise AssertionError("condition not met in time")
