"""Cycle throughput on a Valkey/Redis cluster of 1, 2 and 3 shards, through 1 and 2 ``starq serve`` processes.

A cycle is submit → claim → complete. Several queues (spread over the shards by their hash tags) are driven
at once: per queue, submitters post batches and workers claim a batch and acknowledge it in one request.
A second scenario drives the engine directly (no HTTP) to show what the shards themselves give.

    uv run python -m benchmarks.cluster_scaling [--seconds 8] [--queues 6]

Everything runs on this machine: the shards, the servers and the load generator share its cores, so the
figures say where the bottleneck is here, not what a fleet of machines would do.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster.helpers import cluster_node_port, form_cluster  # noqa: E402
from serverproc import start_server  # noqa: E402
from starq.server.embedded import start_store  # noqa: E402
from starq.server.engine.engine import open_engine  # noqa: E402
from starq.server.engine.models import NewJob, new_job_id  # noqa: E402

KEY = {"X-API-Key": "dev-key"}
BATCH = 50


def start_cluster(shards: int, base: Path):
    stores = []
    try:
        for i in range(shards):
            stores.append(
                start_store(
                    base / f"shard{i}",
                    port=cluster_node_port(),
                    appendonly=False,
                    extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
                )
            )
        ports = [int(s.url.rsplit(":", 1)[1]) for s in stores]
        trio.run(form_cluster, ports)
    except BaseException:
        for store in stores:
            store.kill()
        raise
    return stores, "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)


async def http_cycles(urls: list[str], queues: list[str], seconds: float) -> int:
    done = 0
    deadline = trio.current_time() + seconds
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(headers=KEY, timeout=30, limits=limits) as client:
        for queue in queues:
            await client.post(f"{urls[0]}/api/v1/queues", json={"name": queue})

        async def submitter(url: str, queue: str) -> None:
            while trio.current_time() < deadline:
                await client.post(
                    f"{url}/api/v1/queues/{queue}/jobs", json={"jobs": [{"payload": {"n": i}} for i in range(BATCH)]}
                )

        async def worker(url: str, queue: str) -> None:
            nonlocal done
            while trio.current_time() < deadline:
                jobs = (
                    await client.post(f"{url}/api/v1/queues/{queue}/jobs/claim", json={"count": BATCH, "block_ms": 200})
                ).json()["jobs"]
                if jobs:
                    r = await client.post(
                        f"{url}/api/v1/queues/{queue}/jobs/ack",
                        json={"complete": [{"id": j["id"], "lease_id": j["lease_id"]} for j in jobs]},
                    )
                    done += r.json()["completed"]

        async with trio.open_nursery() as nursery:
            for i, queue in enumerate(queues):
                # Submit through one process and claim through the other when there are two.
                nursery.start_soon(submitter, urls[i % len(urls)], queue)
                nursery.start_soon(worker, urls[(i + 1) % len(urls)], queue)
                nursery.start_soon(worker, urls[(i + 1) % len(urls)], queue)
    return done


async def engine_cycles(url: str, queues: list[str], seconds: float) -> int:
    done = 0
    deadline = trio.current_time() + seconds
    async with open_engine(url, max_connections=32) as engine:
        for queue in queues:
            await engine.create_queue(queue, {})

        async def loop(queue: str) -> None:
            nonlocal done
            while trio.current_time() < deadline:
                await engine.submit(
                    queue, [NewJob(payload='{"n": 1}') for _ in range(BATCH)], [new_job_id() for _ in range(BATCH)]
                )
                jobs = await engine.claim(queue, BATCH, "bench")
                outcomes = await engine.ack(queue, [(j.id, j.lease_id, "{}") for j in jobs], [])
                done += sum(1 for o in outcomes if o.error is None)

        async with trio.open_nursery() as nursery:
            for queue in queues:
                nursery.start_soon(loop, queue)
                nursery.start_soon(loop, queue)
    return done


async def store_cpu_seconds(url: str) -> float:
    """CPU seconds (user + system) every node of the cluster has used so far, from INFO cpu."""
    import coredis

    from starq.server.engine.store import parse_store_url

    total = 0.0
    for host, port in parse_store_url(url).nodes:
        async with coredis.Redis(host=host, port=port, decode_responses=True) as node:
            cpu = await node.info("cpu")
            for field in ("used_cpu_user", "used_cpu_sys"):
                seconds = cpu[field]
                assert isinstance(seconds, (int, float, str)), (field, seconds)
                total += float(seconds)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--queues", type=int, default=6)
    args = parser.parse_args()
    print(f"# {os.cpu_count()} cores; {args.queues} queues; batches of {BATCH}; {args.seconds:g} s per run")
    print("| shards | path | server processes | completed jobs/s |")
    print("|---|---|---|---|")
    for shards in (1, 2, 3):
        with tempfile.TemporaryDirectory() as tmp:
            stores, url = start_cluster(shards, Path(tmp))
            try:
                queues = [f"b-{uuid.uuid4().hex[:6]}" for _ in range(args.queues)]
                cpu_before = trio.run(store_cpu_seconds, url)
                started = time.monotonic()
                n = trio.run(engine_cycles, url, queues, args.seconds)
                elapsed = time.monotonic() - started
                cpu = trio.run(store_cpu_seconds, url) - cpu_before
                # What the store spent per job bounds what one shard can give: one core's second divided by it.
                print(
                    f"| {shards} | engine (no HTTP) | – | {n / elapsed:,.0f} "
                    f"(store CPU {1e6 * cpu / n:,.0f} µs/job, all shards: {100 * cpu / elapsed:.0f}% of a core) |",
                    flush=True,
                )
                for processes in (1, 2):
                    servers = [start_server("--redis-url", url) for _ in range(processes)]
                    try:
                        queues = [f"b-{uuid.uuid4().hex[:6]}" for _ in range(args.queues)]
                        started = time.monotonic()
                        n = trio.run(http_cycles, [s.url for s in servers], queues, args.seconds)
                        rate = n / (time.monotonic() - started)
                        print(f"| {shards} | HTTP | {processes} | {rate:,.0f} |", flush=True)
                    finally:
                        for server in servers:
                            server.kill()
            finally:
                for store in stores:
                    store.stop()


if __name__ == "__main__":
    main()
