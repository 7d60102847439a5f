"""The cluster client keeps its pool whole when the server kills a connection in the middle of a command
(coredis 6.9 loses that pool slot for good; two such losses per node empty a pool of two, and then every
command to that node hangs)."""

from __future__ import annotations

import coredis
import coredis.exceptions
import trio

from starq.server.engine.store import open_redis, parse_store_url


async def kill_clients(cluster_url: str) -> int:
    killed = 0
    for host, port in parse_store_url(cluster_url).nodes:
        async with coredis.Redis(host=host, port=port, decode_responses=True) as node:
            killed += await node.client_kill(type_=coredis.PureToken.NORMAL, skipme=True)
    return killed


async def test_connections_killed_mid_command_do_not_shrink_the_pool(cluster_url):
    async with open_redis(cluster_url, max_connections=2) as client:
        key = "pool-{victim}"
        for round_ in range(4):
            failed = trio.Event()

            async def blocked(failed: trio.Event = failed) -> None:
                try:
                    await client.blpop([key], timeout=5)
                except (coredis.exceptions.ConnectionError, TimeoutError, EOFError):
                    pass
                finally:
                    failed.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked)
                await trio.sleep(0.2)  # the BLPOP is in flight on a leased connection
                assert await kill_clients(cluster_url) > 0
                with trio.fail_after(5):
                    await failed.wait()
            with trio.fail_after(8):
                await client.set(key + "-after", str(round_))
                assert await client.get(key + "-after") == str(round_)
