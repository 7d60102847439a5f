"""A Sentinel-managed primary: ``redis+sentinel://sentinel:port/primary-name`` finds it through the sentinel."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from starq.server.embedded import find_server_binary, free_port, start_store
from starq.server.engine.engine import open_engine
from starq.server.engine.models import NewJob, new_job_id


def _pings(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory):
    """One primary and one sentinel watching it (quorum 1) under the name ``starq-primary``."""
    data = tmp_path_factory.mktemp("sentinel")
    primary = start_store(data / "primary", unix_socket=False, appendonly=False)
    primary_port = int(primary.url.rsplit(":", 1)[1])
    port = free_port()
    conf = data / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor starq-primary 127.0.0.1 {primary_port} 1\n")
    sentinel = subprocess.Popen(
        [find_server_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while not _pings(port):
            assert sentinel.poll() is None and time.monotonic() < deadline, "the sentinel did not start"
            time.sleep(0.05)
        yield f"redis+sentinel://127.0.0.1:{port}/starq-primary", primary
    finally:
        sentinel.kill()
        sentinel.wait()
        primary.stop()


async def test_engine_reaches_the_primary_through_the_sentinel(sentinel_url, queue_name):
    url, primary = sentinel_url
    async with open_engine(url) as engine:
        await engine.create_queue(queue_name, {})
        await engine.submit(queue_name, [NewJob(payload='{"s": 1}')], [new_job_id()])
        (job,) = await engine.claim(queue_name, 1, "w")
        assert await engine.complete(queue_name, job.id, job.lease_id) == "completed"
    # The writes went to the primary the sentinel names.
    async with open_engine(primary.url) as direct:
        assert (await direct.queue_info(queue_name)).counts["completed"] == 1


def test_starq_serve_on_a_sentinel_url(server_factory, sentinel_url, queue_name):
    url, _ = sentinel_url
    proc = server_factory("--redis-url", url, redis=False)
    with httpx.Client(base_url=proc.url, headers={"X-API-Key": "dev-key"}) as client:
        assert client.get("/api/health").json()["status"] == "ok"
        assert client.post("/api/v1/queues", json={"name": queue_name}).status_code == 201
        assert client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {}}).status_code == 201
        assert client.get(f"/api/v1/queues/{queue_name}").json()["pending"] == 1
