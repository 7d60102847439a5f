"""Fixtures of the engine tests: a raw look at the store.

The raw client exists only so tests can check what the engine must leave in Redis (no stray keys, streams
holding only pending jobs); product code never reads keys outside the engine. The helpers the tests share are in
``helpers.py``.
"""

from __future__ import annotations

import coredis
import pytest


@pytest.fixture
async def raw(redis_url):
    """A plain coredis client on the test store (for checks on keys only)."""
    client = coredis.Redis.from_url(redis_url, decode_responses=True)
    async with client:
        yield client
