"""Helpers shared by the fault-injection tests (a module of its own: test files import it by name, which
a second conftest.py elsewhere in the suite would shadow)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

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
