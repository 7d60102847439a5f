"""Fixtures of the fault-injection suite: stores that can be killed and restarted."""

from __future__ import annotations

import pytest

from faults.helpers import StoreHandle
from starq.server.embedded import free_port


@pytest.fixture
def own_store(tmp_path):
    """A store of this test's own, with AOF, on a fixed loopback port so it can be killed and restarted there.

    Returns a ``StoreHandle``; every store it started is stopped after the test.
    """
    handle = StoreHandle(tmp_path / "store", free_port())
    yield handle
    handle.stop()
