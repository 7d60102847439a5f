"""A 3-node Valkey (or Redis) cluster on loopback, formed from Python, for the session (see ``helpers.py``)."""

from __future__ import annotations

import pytest
import trio

from cluster.helpers import form_cluster, start_cluster_node


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory):
    """``redis+cluster://`` URL of a fresh 3-primary cluster (no replicas)."""
    stores = []
    try:
        # Started one by one inside the try, so a node that fails to start never leaves the others running.
        for i in range(3):
            stores.append(start_cluster_node(tmp_path_factory.mktemp(f"node{i}")))
        ports = [int(s.url.rsplit(":", 1)[1]) for s in stores]
        trio.run(form_cluster, ports)
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    finally:
        for store in stores:
            store.stop()


@pytest.fixture
def scrape_text():
    """The text of an instance's /metrics, parsed once with prometheus-client's parser to prove it parses."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    def get(url: str) -> str:
        response = httpx.get(url + "/metrics", timeout=10)
        assert response.status_code == 200
        assert list(text_string_to_metric_families(response.text))
        return response.text

    return get
