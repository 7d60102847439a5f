"""Fixtures for the fuzzing and security tests: an app on the real test store, driven in-process."""

from __future__ import annotations

import pytest

from starq.server.app import create_app
from starq.server.hub import Hub
from starq.server.settings import Settings


@pytest.fixture
async def make_client(engine, nursery):
    """Builds a Quart test client for an app with the given Settings overrides (a real engine underneath)."""
    hub = Hub(engine)
    await nursery.start(hub.run)

    def make(**overrides):
        return create_app(engine, hub, Settings(**overrides)).test_client()

    return make


@pytest.fixture
async def client(make_client):
    """A test client for an app with the default settings (dev mode: the key is ``dev-key``)."""
    return make_client()
