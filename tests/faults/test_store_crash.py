"""``kill -9`` of the store mid-load, restarted from its AOF: health says 503 meanwhile, requests get 503
(not a hang, not a 500), the server reconnects by itself, and no acknowledged job is lost."""

from __future__ import annotations

import httpx
import trio

from benchmarks.fault_load import CLIENT_TIMEOUT, KEY, Load
from faults.helpers import create_queue, report


async def test_store_killed_and_restarted_from_its_aof(own_store, server_factory, queue_name):
    server = server_factory("--redis-url", own_store.url, redis=False)
    create_queue(server.url, queue_name)
    load = Load(server.url, queue_name, submitters=3, workers=4, batch=5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(load.run)
        await trio.sleep(1.5)
        acked_before = len(load.books.acked)
        own_store.kill()
        async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=CLIENT_TIMEOUT) as client:
            # During the outage every answer is a prompt 503 with a JSON body.
            for _ in range(5):
                health = await client.get("/api/health")
                assert health.status_code == 503 and health.json()["status"] == "error"
                r = await client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": load.probe()})
                assert r.status_code == 503 and r.json()["error"] == "store_unavailable"
                r = await client.get(f"/api/v1/queues/{queue_name}")
                assert r.status_code == 503 and r.json()["error"] == "store_unavailable"
                await trio.sleep(0.2)
            own_store.start()  # same port, same data dir: it replays the AOF
            with trio.fail_after(30):
                while (await client.get("/api/health")).status_code != 200:
                    await trio.sleep(0.1)
        await trio.sleep(1.5)
        load.stop_submitting()
        await load.drained(within=60)
        load.stop()
    assert server.process.poll() is None, "the server died with its store"
    summary = await load.verify()
    assert acked_before > 0 and summary.acked > acked_before  # work was acknowledged before and after
    assert summary.responses.get("submit 503", 0) > 0  # the fault did strike the load
    report("store kill -9", summary)
