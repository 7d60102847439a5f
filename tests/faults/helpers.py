"""Helpers of the fault-injection tests: queues with short leases, a store that can be killed and restarted on
its port, and printing a scenario's figures."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from starq.server.embedded import EmbeddedStore, start_store

QUEUE_SETTINGS = {"claim_timeout": 3, "retry_delay": 0, "max_retries": 50}


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def create_queue(url: str, name: str, **settings) -> None:
    """Creates a queue with short leases, so work stranded by a fault is reclaimed within the test."""
    r = httpx.post(
        url + "/api/v1/queues",
        json={"name": name, **QUEUE_SETTINGS, **settings},
        headers={"X-API-Key": "dev-key"},
        timeout=30,
    )
    assert r.status_code == 201, r.text


def report(name: str, summary) -> None:
    """Prints a scenario's figures (shown with ``pytest -s``), so runs can be compared and quoted."""
    import attrs

    print(f"\n[{name}]", attrs.asdict(summary))


class StoreHandle:
    """A store with AOF on a fixed loopback port, so it can be killed and started again there."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.store: EmbeddedStore | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store = start_store(self.data_dir, port=self.port, unix_socket=False, appendonly=True)

    def kill(self) -> None:
        assert self.store is not None
        self.store.kill()

    def stop(self) -> None:
        if self.store is not None:
            self.store.stop()
