"""Fixtures: a real Valkey/Redis for the session, an engine per test, unique queue names and ``starq serve``
processes; and the markers each folder's tests carry."""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import pytest

from serverproc import start_server
from starq.server.embedded import start_store
from starq.server.engine.engine import open_engine

TESTS = Path(__file__).parent
# The marker every test of a folder carries (registered in pyproject.toml), so `-m "not browser"` and the like
# select by what a test needs, and a new test file in the folder cannot be left out.
FOLDER_MARKERS = {"dashboard": "browser", "bench": "bench", "faults": "faults"}


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by `-m`
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(TESTS) and (marker := FOLDER_MARKERS.get(item.path.relative_to(TESTS).parts[0])):
            item.add_marker(marker)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The store every test talks to: ``STARQ_TEST_REDIS_URL`` if set, else one started on a free port."""
    url = os.environ.get("STARQ_TEST_REDIS_URL")
    if url:
        yield url
        return
    store = start_store(tmp_path_factory.mktemp("store"), unix_socket=False, appendonly=False)
    yield store.url
    store.stop()


_names = itertools.count()


@pytest.fixture
def queue_name():
    """A queue name no other test uses, so tests never need to flush the store."""
    return f"t-{uuid.uuid4().hex[:8]}-{next(_names)}"


@pytest.fixture
async def engine(redis_url):
    async with open_engine(redis_url) as engine:
        yield engine


@pytest.fixture
def server_factory(redis_url):
    """Starts ``starq serve`` processes against the test store; all are stopped after the test."""
    started = []

    def start(*args, env=None, redis=True, **kw):
        extra = ["--redis-url", redis_url] if redis else []
        server = start_server(*extra, *args, env=env, **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def server(redis_url):
    """One shared ``starq serve`` process against the test store (for tests that need only HTTP)."""
    proc = start_server("--redis-url", redis_url)
    yield proc
    proc.kill()
