"""Fixtures for the operations tests: scraping and parsing ``/metrics``, and a small HTTP helper."""

from __future__ import annotations

import httpx
import pytest

from ops.helpers import KEY, Scrape


@pytest.fixture
def scrape():
    def get(url: str) -> Scrape:
        response = httpx.get(url + "/metrics", timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return Scrape(response.text)

    return get


@pytest.fixture
def api():
    """An httpx client that sends the dev key; pass the server's URL as base_url."""
    clients = []

    def make(base_url: str) -> httpx.Client:
        client = httpx.Client(base_url=base_url, headers=KEY, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
