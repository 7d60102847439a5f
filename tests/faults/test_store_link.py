"""Network faults between the server and its store, injected by ``FaultProxy``: latency, a stalled link,
and links cut mid-command. The server must answer 503 within its store timeouts (never hang, never 500),
recover by itself, and neither lose an acknowledged job nor store one submit twice."""

from __future__ import annotations

import httpx
import pytest
import trio

from benchmarks.fault_load import CLIENT_TIMEOUT, KEY, Load
from benchmarks.fault_proxy import FaultProxy
from faults.helpers import create_queue, host_port, report
from starq.server.engine.engine import open_engine
from starq.server.maintenance import maintain_once
from starq.server.settings import Settings
from starq.worker_kit.errors import StoreUnavailable

# The server's bound on one store round trip (server/engine/store.py COMMAND_TIMEOUT), plus slack for a
# request that first waits for a pool slot.
STORE_TIMEOUT = Settings().store_timeout


async def start_behind_proxy(nursery, redis_url, server_factory, queue_name):
    proxy = FaultProxy(*host_port(redis_url))
    await nursery.start(proxy.serve)
    # Both block: run them off the event loop, which the proxy needs to forward the server's traffic.
    server = await trio.to_thread.run_sync(lambda: server_factory("--redis-url", proxy.url, redis=False))
    await trio.to_thread.run_sync(create_queue, server.url, queue_name)
    return proxy, server


async def finish(load: Load, server, proxy: FaultProxy, name: str):
    load.stop_submitting()
    await load.drained(within=60)
    load.stop()
    assert server.process.poll() is None
    summary = await load.verify()
    report(name, summary)
    return summary


async def test_latency_on_the_store_link(redis_url, server_factory, queue_name, nursery):
    proxy, server = await start_behind_proxy(nursery, redis_url, server_factory, queue_name)
    load = Load(server.url, queue_name)
    async with trio.open_nursery() as inner:
        inner.start_soon(load.run)
        await trio.sleep(0.5)
        proxy.delay(0.05)
        await trio.sleep(2)
        proxy.delay(0)
        await trio.sleep(0.5)
        summary = await finish(load, server, proxy, "store link latency 50 ms")
    assert summary.acked > 0 and summary.unknown == 0  # slow is not broken: every request succeeded


async def test_store_links_cut_repeatedly(redis_url, server_factory, queue_name, nursery):
    proxy, server = await start_behind_proxy(nursery, redis_url, server_factory, queue_name)
    load = Load(server.url, queue_name, batch=3)
    async with trio.open_nursery() as inner:
        inner.start_soon(load.run)
        await trio.sleep(0.5)
        cut = 0
        for _ in range(8):
            cut += proxy.cut()
            await trio.sleep(0.3)
        await trio.sleep(1)
        await finish(load, server, proxy, "store links cut 8 times")
    assert cut > 0
    assert proxy.statistics().accepted > 1  # the server reconnected by itself


async def test_stalled_store_link_times_out_with_503_then_recovers(redis_url, server_factory, queue_name, nursery):
    proxy, server = await start_behind_proxy(nursery, redis_url, server_factory, queue_name)
    load = Load(server.url, queue_name, submitters=2, workers=2)
    async with trio.open_nursery() as inner:
        inner.start_soon(load.run)
        await trio.sleep(0.5)
        proxy.stall()
        async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=CLIENT_TIMEOUT) as client:
            start = trio.current_time()
            health = await client.get("/api/health")
            waited = trio.current_time() - start
            assert health.status_code == 503 and health.json()["status"] == "error"
            # It waited for the store timeout, not for ever (the bound is generous: it is not a benchmark).
            assert waited < STORE_TIMEOUT * 3
            r = await client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": load.probe()})
            assert r.status_code == 503 and r.json()["error"] == "store_unavailable"
            proxy.resume()
            with trio.fail_after(30):
                while (await client.get("/api/health")).status_code != 200:
                    await trio.sleep(0.1)
        await trio.sleep(1)
        summary = await finish(load, server, proxy, "store link stalled")
    assert summary.responses.get("submit 503", 0) + summary.responses.get("claim 503", 0) > 0


async def test_a_stalled_store_fails_pipelined_calls_with_store_unavailable(redis_url, queue_name, nursery):
    """The maintenance loop and the queue list send pipelines: their replies time out when they are read, and
    that must be StoreUnavailable like every other round trip (a bare TimeoutError once ended the maintenance
    loop, and with it the whole server)."""
    proxy = FaultProxy(*host_port(redis_url))
    await nursery.start(proxy.serve)
    async with open_engine(proxy.url, store_timeout=0.5) as engine:
        await engine.create_queue(queue_name, {})
        proxy.stall()
        for call in (engine.tick_many([queue_name]), engine.list_queues(), maintain_once(engine, [queue_name])):
            with pytest.raises(StoreUnavailable):
                await call
        proxy.resume()
        await maintain_once(engine, [queue_name])
        await engine.delete_queue(queue_name)
