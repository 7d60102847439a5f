"""Fixtures of the end-to-end tests: whole-service process control."""

from __future__ import annotations

import os
import signal

import pytest

from serverproc import ServerProcess


@pytest.fixture
def service_group_reaper():
    """Kills the process groups of embedded-store services a test started, even when the test fails."""
    servers: list[ServerProcess] = []
    yield servers.append
    for server in servers:
        try:
            os.killpg(server.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.process.wait()
