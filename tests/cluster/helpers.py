"""Helpers of the cluster tests (and of ``benchmarks/cluster_scaling.py``): Valkey (or Redis) cluster nodes on
loopback, formed from Python; and a submit load with a drain, for the failover tests.

Each node is the embedded store's binary with ``--cluster-enabled yes``; the slots are split evenly with CLUSTER
ADDSLOTSRANGE and the nodes introduced with CLUSTER MEET (no valkey-cli needed).
"""

from __future__ import annotations

import random
import socket
import threading
import time

import coredis
import httpx
import trio

from starq.server.embedded import start_store

SLOTS = 16384
KEY = {"X-API-Key": "dev-key"}


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


class Submitter:
    """Submits one job per request in a thread; remembers what was acknowledged and what failed."""

    def __init__(self, url: str, queue: str) -> None:
        self.url, self.queue = url, queue
        self.acked: list[str] = []
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=KEY, timeout=15) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    r = client.post(f"/api/v1/queues/{self.queue}/jobs", json={"payload": {"n": n}})
                except httpx.HTTPError:
                    self.errors += 1
                    continue
                if r.status_code == 201:
                    self.acked.append(r.json()["jobs"][0]["id"])
                else:
                    self.errors += 1
                    time.sleep(0.05)


def drain(url: str, queue: str, expected: set[str]) -> set[str]:
    """Claims and completes until every expected job came back (or 30 s pass); returns what came back."""
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, headers=KEY, timeout=15) as client:
        while not expected <= seen and time.monotonic() < deadline:
            r = client.post(f"/api/v1/queues/{queue}/jobs/claim", json={"count": 100, "block_ms": 500})
            if r.status_code != 200:
                time.sleep(0.1)
                continue
            jobs = r.json()["jobs"]
            seen |= {j["id"] for j in jobs}
            if jobs:
                client.post(
                    f"/api/v1/queues/{queue}/jobs/ack",
                    json={"complete": [{"id": j["id"], "lease_id": j["lease_id"]} for j in jobs]},
                )
    return seen
