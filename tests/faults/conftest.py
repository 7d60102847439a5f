"""Fixtures of the fault-injection suite: stores that can be killed and restarted, servers with small limits."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from starq.server.embedded import free_port, start_store


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


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


QUEUE_SETTINGS = {"claim_timeout": 3, "retry_delay": 0, "max_retries": 50}


def create_queue(url: str, name: str, **settings) -> None:
    """Creates a queue with short leases, so work stranded by a fault is reclaimed within the test."""
    import httpx

    r = httpx.post(url + "/api/v1/queues", json={"name": name, **QUEUE_SETTINGS, **settings},
                   headers={"X-API-Key": "dev-key"}, timeout=30)
    assert r.status_code == 201, r.text


def report(name: str, summary) -> None:
    """Prints a scenario's figures (shown with ``pytest -s``), so runs can be compared and quoted."""
    import attrs

    print(f"\n[{name}]", attrs.asdict(summary))
