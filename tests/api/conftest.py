"""Fixtures of the API tests: the app behind Quart's test client, on a real engine and a real hub."""

from __future__ import annotations

from typing import Any

import pytest

from api.helpers import Api
from starq.server.app import create_app
from starq.server.hub import Hub
from starq.server.settings import Settings


@pytest.fixture
def make_api(engine, nursery):
    """Builds an ``Api`` over an app with the given settings (defaults: dev mode, documented limits)."""

    async def make(**settings: Any) -> Api:
        hub = Hub(engine)
        await nursery.start(hub.run)
        app = create_app(engine, hub, Settings(**settings))
        return Api(client=app.test_client(), engine=engine, hub=hub)

    return make


@pytest.fixture
async def api(make_api):
    return await make_api()
