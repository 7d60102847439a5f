"""Fixtures for the operations tests: scraping and parsing ``/metrics``, and a small HTTP helper."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

KEY = {"X-API-Key": "dev-key"}


class Scrape:
    """One parsed ``/metrics`` answer: ``value(name, **labels)`` finds a sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        raise KeyError(f"no sample {name} {labels}")

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample that matches (e.g. one route across statuses)."""
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


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
