"""A replica promoted while jobs are being submitted: the server follows the new primary, and no
acknowledged job is lost beyond what asynchronous replication allows.

The cluster here is its own (three primaries and one replica of the first), so promoting a replica does
not disturb the session's cluster.
"""

from __future__ import annotations

import time
import uuid

import coredis
import httpx
import pytest
import trio

from cluster.helpers import KEY, Submitter, drain, form_cluster, start_cluster_node


def port_of(store) -> int:
    return int(store.url.rsplit(":", 1)[1])


async def add_replica(primary_port: int, replica_port: int) -> None:
    async with coredis.Redis(host="127.0.0.1", port=primary_port, decode_responses=True) as primary:
        primary_id = await primary.cluster_myid()
        await primary.cluster_meet("127.0.0.1", replica_port)
    async with coredis.Redis(host="127.0.0.1", port=replica_port, decode_responses=True) as replica:
        with trio.fail_after(20):
            while True:
                try:
                    await replica.cluster_replicate(primary_id)
                    break
                except coredis.exceptions.ResponseError:
                    await trio.sleep(0.1)  # the replica does not know the primary yet
            while (await replica.info("replication")).get("master_link_status") != "up":
                await trio.sleep(0.1)


async def failover(replica_port: int, force: bool) -> None:
    async with coredis.Redis(host="127.0.0.1", port=replica_port, decode_responses=True) as replica:
        await replica.cluster_failover(coredis.PureToken.FORCE if force else None)
        with trio.fail_after(20):
            while (await replica.info("replication"))["role"] != "master":
                await trio.sleep(0.05)


@pytest.fixture
def cluster_with_replica(tmp_path):
    stores = []
    try:
        for i in range(4):
            stores.append(start_cluster_node(tmp_path / f"n{i}"))
        primaries, replica = stores[:3], stores[3]
        trio.run(form_cluster, [port_of(s) for s in primaries])
        trio.run(add_replica, port_of(primaries[0]), port_of(replica))
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port_of(s)}" for s in stores), primaries[0], replica
    finally:
        for store in stores:
            store.kill()


def queue_on_first_shard() -> str:
    """A queue whose slot is in the first primary's range (0-5460), the shard with the replica."""
    import binascii

    while True:
        name = f"f-{uuid.uuid4().hex[:8]}"
        if binascii.crc_hqx(name.encode(), 0) % 16384 <= 5460:
            return name


@pytest.mark.filterwarnings("ignore::UserWarning")  # coredis suggests ensure_replication() over a bare WAIT
@pytest.mark.parametrize("force", [False, True], ids=["coordinated", "forced-after-primary-killed"])
def test_replica_promoted_under_load(cluster_with_replica, server_factory, force):
    url, primary, replica = cluster_with_replica
    server = server_factory("--redis-url", url, redis=False)
    queue = queue_on_first_shard()
    assert httpx.post(f"{server.url}/api/v1/queues", json={"name": queue}, headers=KEY).status_code == 201
    load = Submitter(server.url, queue)
    load.thread.start()
    safe: set[str] = set()  # the jobs a forced failover must keep (a coordinated one must keep every job)
    try:
        time.sleep(1.0)
        if force:
            # Everything acknowledged before the replica confirms it has it must survive; later writes may not.
            async def confirm() -> int:
                async with coredis.Redis(host="127.0.0.1", port=port_of(primary)) as p:
                    return await p.wait(1, 5000)

            count_before = len(load.acked)
            assert trio.run(confirm) == 1
            safe = set(load.acked[:count_before])
            primary.kill()
        trio.run(failover, port_of(replica), force)
        before = len(load.acked)
        deadline = time.monotonic() + 30
        while len(load.acked) < before + 20:
            assert time.monotonic() < deadline, "submits did not resume after the failover"
            time.sleep(0.05)
    finally:
        load.stop.set()
        load.thread.join(30)
    acked = set(load.acked)
    back = drain(server.url, queue, acked)
    lost = acked - back
    print(
        f"{'forced' if force else 'coordinated'} failover: {len(acked)} acknowledged, {len(lost)} lost, "
        f"{load.errors} submits refused or failed during the switch"
    )
    if force:
        assert safe <= back, f"{len(safe - back)} jobs lost that the replica had confirmed"
    else:
        assert not lost, f"{len(lost)} acknowledged jobs lost in a coordinated failover"
