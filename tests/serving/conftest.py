"""Fixtures of the serving-path tests: the apps of ``apps.py`` served with Starq's HTTP/1.1 path in the test's
process (port 0)."""

from __future__ import annotations

import pytest
import trio

from serving.apps import make_app_with_failures, raw_app
from serving.wire import serving_config, start_serving
from starq.server import http1


@pytest.fixture
async def raw_served(nursery):
    """Serves ``raw_app`` with ``http1``; yields (host, port)."""
    config = serving_config()
    http1.enable(config, 50)
    stop = trio.Event()
    yield await start_serving(nursery, raw_app, config, stop)
    stop.set()


@pytest.fixture
async def served(nursery):
    """Serves the app with ``http1``; yields a dict: host, port, events, config, stop, count."""
    events: list[str] = []
    config = serving_config()
    config.h11_max_incomplete_size = 4096
    config.graceful_timeout = 5
    count = http1.enable(config, 50)
    stop = trio.Event()
    host, port = await start_serving(nursery, make_app_with_failures(events), config, stop)
    yield {"host": host, "port": port, "events": events, "config": config, "stop": stop, "count": count}
    stop.set()
