"""Measures what STARQ_DURABLE=1 costs: submit latency and throughput with and without it.

Not a test (nothing is asserted about speed). Run: ``uv run python tests/faults/measure_durable.py``.
Each mode gets a fresh ``starq serve`` with its embedded store (everysec, or always in durable mode) and
``CLIENTS`` concurrent clients submitting one job per request for ``SECONDS``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).parents[1]))
from serverproc import start_server

CLIENTS, SECONDS = 8, 5.0
KEY = {"X-API-Key": "dev-key"}


async def load(url: str) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = trio.current_time() + SECONDS

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers=KEY, timeout=30) as c:
            while trio.current_time() < deadline:
                start = time.perf_counter()
                r = await c.post("/api/v1/queues/bench/jobs", json={"payload": {"n": 1}})
                latencies.append(time.perf_counter() - start)
                assert r.status_code == 201, r.text

    async with trio.open_nursery() as nursery:
        for _ in range(CLIENTS):
            nursery.start_soon(client)
    return len(latencies), latencies


def measure(durable: bool) -> str:
    env = {"STARQ_DURABLE": "1"} if durable else {}
    server = start_server("--data-dir", tempfile.mkdtemp(), env=env)
    try:
        httpx.post(server.url + "/api/v1/queues", json={"name": "bench"}, headers=KEY).raise_for_status()
        n, lat = trio.run(load, server.url)
    finally:
        server.stop()
    lat.sort()
    return (
        f"{'durable' if durable else 'default'}: {n / SECONDS:.0f} submits/s, latency median "
        f"{statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms"
    )


async def engine_level(durable: bool, concurrency: int, n: int = 400) -> str:
    """The store's share: ``n`` one-job submits through the engine alone (no HTTP), ``concurrency`` at once."""
    from starq.server.embedded import start_store
    from starq.server.engine.engine import open_engine
    from starq.server.engine.models import NewJob, new_job_id

    store = start_store(
        tempfile.mkdtemp(),
        unix_socket=False,
        appendonly=True,
        extra_args=["--appendfsync", "always" if durable else "everysec"],
    )
    try:
        async with open_engine(store.url, durable=durable) as engine:
            await engine.create_queue("bench", {})
            start = time.perf_counter()

            async def submitter(count: int) -> None:
                for _ in range(count):
                    await engine.submit("bench", [NewJob(payload="{}")], [new_job_id()])

            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(submitter, n // concurrency)
            elapsed = time.perf_counter() - start
    finally:
        store.stop()
    return (
        f"engine, {'durable' if durable else 'default'}, {concurrency} at once: "
        f"{n / elapsed:.0f} submits/s ({elapsed / n * concurrency * 1000:.2f} ms each)"
    )


if __name__ == "__main__":
    for concurrency in (1, 16):
        for durable in (False, True, False, True):
            print(trio.run(engine_level, durable, concurrency), flush=True)
    for durable in (False, True, False, True):
        print(measure(durable), flush=True)
