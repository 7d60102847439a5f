"""Worker kit fixtures: a ``StarqClient`` on the shared test server, queues made through it, and a free port."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from starq.worker_kit import QueueInfo, StarqClient
from worker_kit.helpers import FAST_RETRY, KEY


@pytest.fixture
async def client(server):
    async with StarqClient(server.url, KEY, timeout=10, retry=FAST_RETRY) as c:
        yield c


@pytest.fixture
def make_queue(client, queue_name) -> Callable[..., Awaitable[QueueInfo]]:
    """Creates the test's queue (fast retries by default, so failure tests do not wait)."""

    async def make(name: str | None = None, **settings: Any) -> QueueInfo:
        settings.setdefault("retry_delay", 0)
        return await client.create_queue(name or queue_name, **settings)

    return make


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
