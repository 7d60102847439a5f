"""``kill -9`` of server processes mid-load: first one worker process of ``--workers 2`` (its supervisor
starts another), then the whole service, restarted on the same port. Requests cut off by the crash have
unknown outcomes; everything acknowledged survives, and claims stranded in the dead processes come back
when their leases expire."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from benchmarks.fault_load import Load
from faults.helpers import create_queue, host_port, report


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def kill_group(server) -> None:
    """Kills a server and its worker processes (they share its process group: it was started in a session)."""
    try:
        os.killpg(server.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.wait()


async def test_worker_process_then_whole_service_killed(server_factory, queue_name):
    started = []

    async def start(*args):
        server = await trio.to_thread.run_sync(lambda: server_factory("--workers", "2", *args, timeout=90))
        started.append(server)
        return server

    try:
        server = await start()
        _, port = host_port(server.url)
        await trio.to_thread.run_sync(create_queue, server.url, queue_name)
        load = Load(server.url, queue_name, batch=2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run)
            await trio.sleep(1.5)

            first = children(server.process.pid)
            assert len(first) == 2
            victim = min(first)
            acked_at_kill = len(load.books.acked)
            os.kill(victim, signal.SIGKILL)
            with trio.fail_after(20):  # the supervisor replaces it
                while len(kids := children(server.process.pid)) != 2 or victim in kids:
                    await trio.sleep(0.1)
            await trio.sleep(1.5)
            # The service kept acknowledging work through the loss of one process and its replacement.
            assert len(load.books.acked) > acked_at_kill

            acked_before = len(load.books.acked)
            kill_group(server)
            await start("--port", str(port))
            await trio.sleep(1.5)

            load.stop_submitting()
            await load.drained(within=60)
            load.stop()
        summary = await load.verify()
    finally:
        for server in started:
            kill_group(server)
    assert summary.acked > acked_before > 0
    transport_errors = sum(n for k, n in summary.responses.items() if not k.split()[1].isdigit())
    assert transport_errors > 0  # the crashes did cut requests off
    report("server kill -9 (one of 2 workers, then all)", summary)
