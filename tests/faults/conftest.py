"""Fixtures of the fault-injection suite: stores that can be killed and restarted, servers with small limits."""

from __future__ import annotations

import pytest

from starq.server.embedded import free_port, start_store


@pytest.fixture
def own_store(tmp_path):
    """A store of this test's own, with AOF, on a fixed loopback port so it can be killed and restarted there.

    Returns a ``StoreHandle``; every store it started is stopped after the test.
    """
    handle = StoreHandle(tmp_path / "store", free_port())
    yield handle
    handle.stop()


class StoreHandle:
    def __init__(self, data_dir, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.store = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store = start_store(self.data_dir, port=self.port, unix_socket=False, appendonly=True)

    def kill(self) -> None:
        self.store.kill()

    def stop(self) -> None:
        if self.store is not None:
            self.store.stop()
