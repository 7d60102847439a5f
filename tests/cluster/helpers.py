"""Helpers of the cluster tests (and of ``benchmarks/cluster_scaling.py``): Valkey (or Redis) cluster nodes on
loopback, formed from Python.

Each node is the embedded store's binary with ``--cluster-enabled yes``; the slots are split evenly with CLUSTER
ADDSLOTSRANGE and the nodes introduced with CLUSTER MEET (no valkey-cli needed).
"""

from __future__ import annotations

import random
import socket

import coredis
import trio

from starq.server.embedded import start_store

SLOTS = 16384


def slot_ranges(nodes: int) -> list[tuple[int, int]]:
    """The 16384 slots split into ``nodes`` contiguous ranges (3 nodes: 0-5460, 5461-10922, 10923-16383)."""
    bounds = [round(i * SLOTS / nodes) for i in range(nodes + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(nodes)]


async def form_cluster(ports: list[int], timeout: float = 20.0) -> None:
    """Gives each node its slot range, introduces them, and waits until every node reports the cluster ok."""
    for port, slots in zip(ports, slot_ranges(len(ports)), strict=True):
        async with coredis.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
            await node.cluster_addslotsrange([slots])
    async with coredis.Redis(host="127.0.0.1", port=ports[0], decode_responses=True) as first:
        for port in ports[1:]:
            await first.cluster_meet("127.0.0.1", port)
    with trio.fail_after(timeout):
        while True:
            infos = []
            for port in ports:
                async with coredis.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
                    infos.append(await node.cluster_info())
            if all(i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == len(ports) for i in infos):
                return
            await trio.sleep(0.1)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_node_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; the bus must stay below 65536."""
    while True:
        port = random.randint(20000, 45000)
        if _free(port) and _free(port + 10000):
            return port


def start_cluster_node(data_dir, *extra: str):
    return start_store(
        data_dir,
        port=cluster_node_port(),
        appendonly=False,
        extra_args=[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            *extra,
        ],
    )
