"""watch: refreshing counts and rates."""

from __future__ import annotations

import json

from starq.cli.watch import Rates, rows
from starq.worker_kit import QueueInfo


async def test_watch_json_lines_with_rates(starq, make_queue, queue_name):
    await make_queue()
    await starq("submit", "-", "-q", queue_name, input='{"n": 1}\n{"n": 2}\n')
    ran = await starq("watch", queue_name, "-n", "3", "-i", "0.1", "--json")
    assert ran.code == 0, ran.stderr
    frames = [json.loads(line) for line in ran.stdout.splitlines()]
    assert len(frames) == 3
    row = frames[-1]["queues"][0]
    assert (row["queue"], row["pending"], row["done/s"], row["paused"]) == (queue_name, 2, 0, False)
    assert frames[0]["error"] == "" and frames[0]["at"].endswith("Z")


async def test_watch_all_queues_plain(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq("watch", "-n", "1")
    lines = ran.stdout.splitlines()
    assert lines[0].split("\t")[:4] == ["queue", "waiting", "pending", "scheduled"]
    assert any(line.startswith(queue_name + "\t") for line in lines)


def test_rates_are_count_changes_per_second(queue_name):
    rates = Rates()
    before = QueueInfo(name=queue_name, completed=0, failed=0)
    after = QueueInfo(name=queue_name, completed=4, failed=1)
    rows([before], rates, 10.0)
    (row,) = rows([after], rates, 12.0)
    assert (row["done/s"], row["failed/s"]) == (2.0, 0.5)
    (row,) = rows([QueueInfo(name=queue_name, completed=1, failed=1)], rates, 13.0)  # records expired
    assert row["done/s"] == 0


async def test_watch_errors(starq, queue_name, free_port):
    missing = await starq("watch", queue_name + "-missing", "-n", "1")
    assert missing.code == 1 and "not found" in missing.stderr
    away = await starq("watch", "-n", "2", "-i", "0.1", url=f"http://127.0.0.1:{free_port}")
    assert away.code == 0  # it keeps watching for the server to come back
    assert away.stderr.count("Error: cannot reach") == 2
