"""``StarqClient`` under asyncio (``asyncio.run``), against a real ``starq serve``: calls, and the waits between
retries, which must not need Trio. (These tests are plain functions: each runs its own asyncio loop.)"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from starq.worker_kit import Backoff, RetryPolicy, ServerUnreachable, StarqClient
from worker_kit.helpers import KEY


def test_calls_work_under_asyncio(server, queue_name):
    async def main() -> tuple:
        async with StarqClient(server.url, KEY, timeout=10) as client:
            health = await client.health()
            await client.create_queue(queue_name, retry_delay=0)
            submitted = await client.submit(queue_name, {"n": 1})
            (job,) = await client.claim(queue_name, block_ms=1000, worker="asyncio")
            status = await client.complete(queue_name, job.id, {"ok": True}, lease_id=job.lease_id)
            return health["status"], submitted.id == job.id, status, (await client.get_job(queue_name, job.id)).result

    assert asyncio.run(main()) == ("ok", True, "completed", {"ok": True})


def test_retries_wait_under_asyncio_then_give_up(free_port, caplog):
    """Nothing listens on the port: each try fails at once, the client waits between them (the wait that needed
    Trio), and raises ServerUnreachable after the last."""
    retry = RetryPolicy(attempts=3, backoff=Backoff(0.05, 0.1))

    async def main() -> None:
        async with StarqClient(f"http://127.0.0.1:{free_port}", KEY, timeout=5, retry=retry) as client:
            await client.health()

    caplog.set_level(logging.DEBUG, logger="starq.worker_kit.client")
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match="cannot reach"):
        asyncio.run(main())
    assert time.monotonic() - started >= 0.05 / 2 + 0.1 / 2  # two waits, each at least half its ceiling
    retries = [r.getMessage() for r in caplog.records if r.name == "starq.worker_kit.client"]
    assert len(retries) == 2 and "; retry 1 in " in retries[0] and "; retry 2 in " in retries[1], retries


def test_a_server_that_comes_up_during_the_retries_answers(server_factory, free_port):
    """The client is pointed at a port where nothing listens yet; a real server starts there while it retries."""
    retry = RetryPolicy(attempts=200, backoff=Backoff(0.1, 0.2))
    outcome: dict = {}

    async def main() -> None:
        async with StarqClient(f"http://127.0.0.1:{free_port}", KEY, timeout=5, retry=retry) as client:
            outcome["health"] = await client.health()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.3)  # a few failed tries first
        assert thread.is_alive() and not outcome
        server_factory("--port", str(free_port))
    finally:
        thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["health"]["status"] == "ok"
