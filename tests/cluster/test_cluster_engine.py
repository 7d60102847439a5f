"""The engine on a 3-node cluster: queues spread over shards, every key of a queue in its queue's slot, the
library on every primary, and ready notifications that cross nodes."""

from __future__ import annotations

import uuid

import coredis
import pytest
import trio

from starq.server.engine.engine import open_engine
from starq.server.engine.models import NewJob, new_job_id
from starq.server.engine.store import parse_store_url
from starq.worker_kit.errors import QueueNotFound


def names(n: int) -> list[str]:
    return [f"c-{uuid.uuid4().hex[:8]}" for _ in range(n)]


async def node_clients(cluster_url: str):
    return [
        coredis.Redis(host=host, port=port, decode_responses=True) for host, port in parse_store_url(cluster_url).nodes
    ]


@pytest.fixture
async def cengine(cluster_url):
    async with open_engine(cluster_url) as engine:
        yield engine


async def test_the_library_is_loaded_on_every_primary(cengine, cluster_url):
    for node in await node_clients(cluster_url):
        async with node:
            libraries = await node.function_list(libraryname="starq")
            assert "starq" in libraries, node


async def test_each_queue_keeps_every_key_in_its_own_slot_on_one_shard(cengine, cluster_url):
    queues = names(12)
    for queue in queues:
        await cengine.create_queue(queue, {"retry_delay": 0})
        await cengine.submit(
            queue, [NewJob(payload='{"n": 1}', priority=p) for p in (0, 5)], [new_job_id(), new_job_id()]
        )
        claimed = await cengine.claim(queue, 1, "w1")
        await cengine.fail(queue, claimed[0].id, claimed[0].lease_id, "boom")
    holders: dict[str, set[int]] = {q: set() for q in queues}
    for i, node in enumerate(await node_clients(cluster_url)):
        async with node:
            for queue in queues:
                found = [k async for k in node.scan_iter(match=f"starq:{{{queue}}}:*")]
                if found:
                    holders[queue].add(i)
                    slots = {await node.cluster_keyslot(k) for k in found}
                    assert slots == {await node.cluster_keyslot(f"starq:{{{queue}}}:meta")}
                    # meta, two streams, job records, indexes, leases... all in the one slot
                    assert len(found) >= 5, found
    assert all(len(nodes) == 1 for nodes in holders.values()), holders
    # Twelve queues over three shards: they do not all land on one.
    assert len({next(iter(nodes)) for nodes in holders.values()}) > 1


async def test_job_cycle_and_counts_on_every_shard(cengine):
    for queue in names(6):
        await cengine.create_queue(queue, {"max_retries": 0})
        ids = [new_job_id() for _ in range(3)]
        await cengine.submit(queue, [NewJob(payload=f'{{"i": {i}}}') for i in range(3)], ids)
        jobs = await cengine.claim(queue, 3, "w")
        assert sorted(j.id for j in jobs) == sorted(ids)
        outcomes = await cengine.ack(
            queue, [(jobs[0].id, jobs[0].lease_id, "{}")], [(jobs[1].id, jobs[1].lease_id, "x", True)]
        )
        assert [o.status for o in outcomes] == ["completed", "failed"]
        assert await cengine.complete(queue, jobs[2].id, jobs[2].lease_id) == "completed"
        info = await cengine.queue_info(queue)
        assert (info.counts["completed"], info.counts["failed"], info.counts["pending"]) == (2, 1, 0)
        assert (await cengine.get_job(queue, jobs[2].id)).status == "completed"


async def test_registry_lists_and_delete_removes_every_key(cengine, cluster_url):
    queues = names(4)
    for queue in queues:
        await cengine.create_queue(queue, {})
        await cengine.submit(queue, [NewJob(payload="{}")], [new_job_id()])
    listed = {info.name for info in await cengine.list_queues()}
    assert set(queues) <= listed
    for queue in queues:
        await cengine.delete_queue(queue)
        with pytest.raises(QueueNotFound):
            await cengine.queue_info(queue)
    assert not set(queues) & set(await cengine.queue_names())
    for node in await node_clients(cluster_url):
        async with node:
            for queue in queues:
                assert not [k async for k in node.scan_iter(match=f"starq:{{{queue}}}:*")]


async def test_ready_notifications_reach_a_subscriber_on_another_node(cengine, cluster_url):
    """A submit runs on the queue's shard; the subscriber's connection may be on any node: pick queues on
    every shard, so at least two of them publish from a node the subscriber is not connected to."""
    queues = names(9)
    for queue in queues:
        await cengine.create_queue(queue, {})
    heard = []
    async with cengine.subscribe() as messages, trio.open_nursery() as nursery:

        async def listen():
            async for channel, name in messages:
                if channel == "ready" and name in queues:
                    heard.append(name)
                    if len(set(heard)) == len(queues):
                        return

        nursery.start_soon(listen)
        for queue in queues:
            # 'ready' is published only while a claim waits: an empty claim that will park marks the queue.
            assert not (await cengine.claim(queue, 1, "w1", park_ms=10_000)).jobs
            await cengine.submit(queue, [NewJob(payload="{}")], [new_job_id()])
        with trio.fail_after(10):
            while len(set(heard)) < len(queues):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    (node, *_) = await node_clients(cluster_url)
    async with node:
        shards = {(await node.cluster_keyslot(f"starq:{{{q}}}:meta")) // 5461 for q in queues}
    assert len(shards) > 1
