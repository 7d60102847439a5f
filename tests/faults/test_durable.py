"""STARQ_DURABLE=1: a write is answered only once the store has it on disk.

The store must fsync every write before it answers (``appendfsync always``); where it has WAITAOF (Redis 7.2+,
Valkey) each write is also confirmed with WAITAOF on the write's own connection. A store that cannot honour
durable mode stops the server at start, with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys

import coredis
import httpx
import pytest
import trio

from starq.server.embedded import free_port, start_store

KEY = {"X-API-Key": "dev-key"}


async def store_facts(url: str) -> tuple[bool, int]:
    """(has WAITAOF, how many WAITAOF calls it has served)."""
    async with coredis.Redis.from_url(url, decode_responses=True) as r:
        try:
            async with r.pipeline(transaction=False, raise_on_error=False) as pipe:
                probe = pipe.waitaof(0, 0, 1)
            await probe
        except coredis.exceptions.ResponseError:
            return False, 0
        stats = await r.info("commandstats")
        waitaof = stats.get("cmdstat_waitaof", {})  # absent until the first call
        assert isinstance(waitaof, dict), waitaof
        return True, int(waitaof.get("calls", 0))


def serve_durable(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``starq serve`` with STARQ_DURABLE=1 expecting it to refuse to start; returns how it ended."""
    return subprocess.run(
        [sys.executable, "-m", "starq.cli", "serve", "--port", "0", *args],
        env={**os.environ, "STARQ_DURABLE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def fsync_always_store(tmp_path):
    store = start_store(
        tmp_path / "always",
        port=free_port(),
        unix_socket=False,
        appendonly=True,
        extra_args=["--appendfsync", "always"],
    )
    yield store
    store.stop()


async def test_durable_writes_survive_a_store_crash_and_are_confirmed(fsync_always_store, server_factory, queue_name):
    url = fsync_always_store.url
    has_waitaof, calls_before = await store_facts(url)
    server = server_factory("--redis-url", url, redis=False, env={"STARQ_DURABLE": "1"})
    async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=30) as client:
        r = await client.post("/api/v1/queues", json={"name": queue_name})
        assert r.status_code == 201
        ids = []
        for i in range(20):
            r = await client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {"i": i}})
            assert r.status_code == 201
            ids.append(r.json()["jobs"][0]["id"])
        r = await client.post(f"/api/v1/queues/{queue_name}/jobs/ack", json={"complete": [{"id": "nope"}]})
        assert r.status_code == 200  # the batch path works in durable mode too
        has_waitaof_now, calls_after = await store_facts(url)
        if has_waitaof:
            # Every write (the queue, 20 submits, the ack batch) was confirmed with its own WAITAOF.
            assert calls_after - calls_before >= 22
        # kill -9 of the store right after the answers: every answered write is in its AOF.
        port = int(url.rsplit(":", 1)[1])
        fsync_always_store.kill()
        restarted = start_store(
            fsync_always_store.data_dir,
            port=port,
            unix_socket=False,
            appendonly=True,
            extra_args=["--appendfsync", "always"],
        )
        try:
            with trio.fail_after(30):
                while (await client.get("/api/health")).status_code != 200:
                    await trio.sleep(0.1)
            listed = (await client.get(f"/api/v1/queues/{queue_name}/jobs", params={"count": 100})).json()["jobs"]
        finally:
            restarted.stop()
    assert sorted(job["id"] for job in listed) == sorted(ids)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--appendfsync", "everysec"], "appendfsync everysec"),
        (["--appendonly", "no"], "appendonly no"),
    ],
)
def test_durable_mode_refuses_a_store_that_does_not_fsync_every_write(tmp_path, args, expected):
    store = start_store(tmp_path / "store", port=free_port(), unix_socket=False, appendonly=True, extra_args=args)
    try:
        done = serve_durable("--redis-url", store.url)
    finally:
        store.stop()
    assert done.returncode == 2
    assert "cannot start" in done.stderr and expected in done.stderr and "appendfsync always" in done.stderr
    assert "Starq is serving" not in done.stdout


async def test_durable_mode_starts_the_embedded_store_fsyncing_every_write(tmp_path, server_factory):
    data = tmp_path / "data"
    server = server_factory("--data-dir", str(data), redis=False, env={"STARQ_DURABLE": "1"})
    r = httpx.post(server.url + "/api/v1/queues", json={"name": "durable"}, headers=KEY)
    assert r.status_code == 201
    async with coredis.Redis.from_url(f"unix://{data.resolve() / 'store.sock'}", decode_responses=True) as store:
        assert (await store.config_get(["appendfsync"]))["appendfsync"] == "always"
    assert server.stop() == 0
