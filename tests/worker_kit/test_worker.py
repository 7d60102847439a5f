"""Worker against a real ``starq serve``: outcomes, capacity, lease extension, shutdown (release), cancelled jobs,
server restarts."""

from __future__ import annotations

import logging
import threading
import time
from typing import TypedDict

import httpx
import pytest
import trio

from starq.worker_kit import Backoff, Permanent, Retry, StarqClient, Unauthorized, Worker
from starq.worker_kit.worker import SHUTDOWN_ERROR
from worker_kit.helpers import FAST_RETRY, KEY, wait_for


class WorkerOptions(TypedDict):
    backoff: Backoff
    block_ms: int


# Short claims and reconnect pauses, so shutdowns and server restarts do not make the tests wait.
FAST: WorkerOptions = {"backoff": Backoff(0.05, 0.5), "block_ms": 1000}


async def counts(client, queue) -> dict:
    info = await client.get_queue(queue)
    return {k: getattr(info, k) for k in ("pending", "scheduled", "claimed", "completed", "failed")}


async def until_counts(client, queue, **expected) -> None:
    async def done() -> bool:
        now = await counts(client, queue)
        return all(now[k] == v for k, v in expected.items())

    await wait_for(done)


async def test_async_handler_completes_jobs_at_full_capacity(client, make_queue, queue_name):
    await make_queue()
    await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(20)])
    running = peak = 0

    async def handle(job):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(0.05)
        running -= 1
        return {"double": job.payload["n"] * 2}

    worker = Worker(client, queue_name, handle, concurrency=4, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, completed=20)
        worker.stop()
    assert peak == 4  # each claim asked for every free slot, and never more
    results = {j.payload["n"]: j.result async for j in client.iter_jobs(queue_name)}
    assert results == {n: {"double": n * 2} for n in range(20)}
    stats = worker.statistics()
    assert (stats.claimed, stats.completed, stats.running) == (20, 20, 0)


async def test_sync_handler_runs_in_a_thread(client, make_queue, queue_name):
    await make_queue()
    job = await client.submit(queue_name, {"n": 1})
    threads = []

    def handle(job):
        threads.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.05)
        return "plain value"

    worker = Worker(client, queue_name, handle, concurrency=2, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, completed=1)
        worker.stop()
    assert threads == [False]
    assert (await client.get_job(queue_name, job.id)).result == "plain value"


async def test_exception_fails_with_traceback_until_dead(client, make_queue, queue_name):
    await make_queue(max_retries=1)
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        raise ValueError(f"cannot handle {job.payload['n']}")

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, failed=1)
        worker.stop()
    dead = await client.get_job(queue_name, job.id)
    assert (dead.status, dead.retries) == ("failed", 1)
    assert dead.error.startswith("ValueError: cannot handle 1\n")
    assert "Traceback (most recent call last)" in dead.error and "in handle" in dead.error
    assert (worker.statistics().retried, worker.statistics().dead) == (1, 1)


async def test_retry_then_success(client, make_queue, queue_name):
    await make_queue(max_retries=3)
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        if job.retries == 0:
            raise Retry("not yet")
        return {"attempt": job.retries + 1}

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, completed=1)
        worker.stop()
    done = await client.get_job(queue_name, job.id)
    assert (done.retries, done.result, done.error) == (1, {"attempt": 2}, "not yet")


async def test_retry_delay_holds_the_job_at_least_that_long(client, make_queue, queue_name):
    await make_queue(max_retries=3)
    await client.submit(queue_name, {"n": 1})
    seen: list[float] = []

    async def handle(job):
        seen.append(trio.current_time())
        if job.retries == 0:
            raise Retry("later", delay=0.6)

    worker = Worker(client, queue_name, handle, concurrency=1, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, completed=1)
        worker.stop()
    assert len(seen) == 2 and seen[1] - seen[0] >= 0.6


async def test_permanent_dead_letters_at_once(client, make_queue, queue_name):
    await make_queue(max_retries=5)
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        raise Permanent("malformed address")

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, failed=1)
        worker.stop()
    dead = await client.get_job(queue_name, job.id)
    assert (dead.status, dead.retries) == ("failed", 0)
    assert dead.error.startswith("Permanent: malformed address")


async def test_long_job_keeps_its_lease(client, make_queue, queue_name):
    # A 2 s lease and a 4 s job: without extensions the job would be reclaimed (and, with no retries left,
    # dead-lettered) before it finished.
    await make_queue(claim_timeout=2, max_retries=0)
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        await trio.sleep(4)
        return "done"

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, completed=1)
        worker.stop()
    done = await client.get_job(queue_name, job.id)
    assert (done.status, done.retries, done.result) == ("completed", 0, "done")


async def test_stale_worker_cannot_overwrite_a_reclaimed_job(client, make_queue, queue_name):
    await make_queue(max_retries=3)
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        # Someone else settles the job under the worker's feet (as after a reclaim): its lease is now stale.
        await client.fail(queue_name, job.id, "taken over", lease_id=job.lease_id, retry=False)
        return "late result"

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await wait_for(lambda: _true(worker.statistics().lost == 1))
        worker.stop()
    final = await client.get_job(queue_name, job.id)
    assert (final.status, final.result, final.error) == ("failed", None, "taken over")


async def _true(value: bool) -> bool:
    return value


async def test_graceful_shutdown_releases_unfinished_jobs_at_once(client, make_queue, queue_name):
    await make_queue(max_retries=3)
    fast = await client.submit_many(queue_name, [{"payload": {"sleep": 0.3}} for _ in range(2)])
    slow = await client.submit_many(queue_name, [{"payload": {"sleep": 60}} for _ in range(2)])
    started = 0

    async def handle(job):
        nonlocal started
        started += 1
        await trio.sleep(job.payload["sleep"])
        return "finished"

    worker = Worker(client, queue_name, handle, concurrency=4, grace=2.0, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await wait_for(lambda: _true(started == 4))
        worker.stop()
        with trio.fail_after(10):  # the grace period plus the reports, not the 60 s jobs
            await _run_finished(worker)
    assert await counts(client, queue_name) == {"pending": 2, "scheduled": 0, "claimed": 0, "completed": 2, "failed": 0}
    for job in fast.jobs:
        assert (await client.get_job(queue_name, job.id)).status == "completed"
    for job in slow.jobs:
        back = await client.get_job(queue_name, job.id)
        # Released: the interrupted attempt does not count, and no error is recorded.
        assert (back.status, back.retries, back.error) == ("pending", 0, "")
        assert [e["event"] for e in back.raw["history"]] == ["submitted", "claimed", "released"]
    stats = worker.statistics()
    assert (stats.interrupted, stats.retried, stats.lost, stats.completed) == (2, 0, 0, 2)
    # Back in line now, not after claim_timeout: another worker gets them at once.
    assert len(await client.claim(queue_name, count=5)) == 2


async def _run_finished(worker: Worker) -> None:
    while worker.statistics().running:
        await trio.sleep(0.05)


class WithoutRelease(httpx.AsyncBaseTransport):
    """The network, except that ``.../release`` is an unknown path, as on a server older than release."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/release"):
            self.refused += 1
            return httpx.Response(404, json={"detail": "Not Found"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_shutdown_on_a_server_without_release_fails_the_job_for_a_retry(server, make_queue, queue_name):
    await make_queue(max_retries=3)
    transport = WithoutRelease()
    async with StarqClient(server.url, KEY, retry=FAST_RETRY, transport=transport) as old:
        job = await old.submit(queue_name, {"sleep": 60})
        started = trio.Event()

        async def handle(job):
            started.set()
            await trio.sleep(60)

        worker = Worker(old, queue_name, handle, grace=0.2, **FAST)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                await started.wait()
                worker.stop()
        back = await old.get_job(queue_name, job.id)
    assert transport.refused == 1
    assert (back.status, back.retries, back.error) == ("pending", 1, SHUTDOWN_ERROR)
    stats = worker.statistics()
    assert (stats.interrupted, stats.retried, stats.lost) == (1, 1, 0)


async def test_a_cancelled_long_job_is_stopped_at_its_next_heartbeat(client, make_queue, queue_name, caplog):
    # A 2 s lease: the worker extends it every second, and learns of the cancel at the next extension.
    caplog.set_level(logging.INFO, logger="starq.worker")
    await make_queue(claim_timeout=2)
    long = await client.submit(queue_name, {"sleep": 60})
    started, stopped = trio.Event(), trio.Event()

    async def handle(job):
        if job.payload["sleep"] < 1:
            return "short one"
        started.set()
        try:
            await trio.sleep(job.payload["sleep"])
        finally:
            stopped.set()
        return "never reported"

    worker = Worker(client, queue_name, handle, concurrency=1, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await started.wait()
        assert await client.cancel(queue_name, long.id) == "cancelled"
        cancelled_at = trio.current_time()
        with trio.fail_after(5):
            await stopped.wait()
        assert trio.current_time() - cancelled_at < 2.5  # within a heartbeat (1 s), with room for a busy machine
        # The worker goes on, its slot free again.
        after = await client.submit(queue_name, {"sleep": 0})
        await until_counts(client, queue_name, completed=1)
        worker.stop()
    final = await client.get_job(queue_name, long.id)
    assert (final.status, final.result, final.error, final.retries) == ("cancelled", None, "", 0)
    assert (await client.get_job(queue_name, after.id)).result == "short one"
    stats = worker.statistics()
    assert (stats.cancelled, stats.lost, stats.completed, stats.retried, stats.running) == (1, 0, 1, 0, 0)
    assert any(f"job {long.id} was cancelled: stopping it" in r.getMessage() for r in caplog.records)


async def test_a_cancelled_sync_job_is_abandoned(client, make_queue, queue_name, caplog):
    caplog.set_level(logging.INFO, logger="starq.worker")
    await make_queue(claim_timeout=2)
    job = await client.submit(queue_name, {"n": 1})
    started, ended = threading.Event(), threading.Event()

    def handle(job):
        # A thread cannot be interrupted; it may look for the cancellation itself to stop early.
        started.set()
        try:
            for _ in range(600):
                trio.from_thread.check_cancelled()
                time.sleep(0.05)
        finally:
            ended.set()
        return "never reported"

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.to_thread.run_sync(started.wait)
        await client.cancel(queue_name, job.id)
        await wait_for(lambda: _true(worker.statistics().cancelled == 1), timeout=5)
        worker.stop()
    assert await trio.to_thread.run_sync(ended.wait, 5)  # check_cancelled() ended the abandoned thread
    assert worker.statistics().lost == 0
    final = await client.get_job(queue_name, job.id)
    assert (final.status, final.result) == ("cancelled", None)
    assert any("thread is abandoned" in r.getMessage() for r in caplog.records)


async def test_a_job_cancelled_before_its_report_counts_as_cancelled(client, make_queue, queue_name):
    await make_queue()
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        await client.cancel(queue_name, job.id)  # someone cancels it while it runs; no heartbeat comes first
        return "too late"

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await wait_for(lambda: _true(worker.statistics().cancelled == 1))
        worker.stop()
    stats = worker.statistics()
    assert (stats.cancelled, stats.lost, stats.completed) == (1, 0, 0)
    assert (await client.get_job(queue_name, job.id)).status == "cancelled"


async def test_stop_while_idle_ends_the_long_poll(client, make_queue, queue_name):
    await make_queue()

    async def handle(job):
        return None

    worker = Worker(client, queue_name, handle, block_ms=30_000)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await trio.sleep(0.3)  # parked in a 30 s claim
            worker.stop()
    # The abandoned claim took nothing: a job submitted now is claimable at once.
    await client.submit(queue_name, {"n": 1})
    assert len(await client.claim(queue_name)) == 1


async def test_bad_api_key_stops_the_worker(server, make_queue, queue_name):
    await make_queue()
    async with StarqClient(server.url, "not-the-key", retry=FAST_RETRY) as intruder:
        worker = Worker(intruder, queue_name, lambda job: None, **FAST)
        with pytest.raises(Unauthorized):
            await worker.run()


async def test_survives_a_server_restart(server_factory, free_port, queue_name):
    first = server_factory("--port", str(free_port))
    url = f"http://127.0.0.1:{free_port}"
    async with StarqClient(url, KEY, retry=FAST_RETRY) as client:
        await client.create_queue(queue_name, retry_delay=0)
        await client.submit_many(queue_name, [{"payload": {"sleep": 0}} for _ in range(3)])
        in_flight = await client.submit(queue_name, {"sleep": 1.5})
        running = trio.Event()

        async def handle(job):
            if job.payload["sleep"]:
                running.set()
            await trio.sleep(job.payload["sleep"])
            return "ok"

        worker = Worker(client, queue_name, handle, concurrency=4, **FAST)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await running.wait()
            first.kill()  # the slow job finishes while the server is gone: its report must wait and retry
            await trio.sleep(2.0)
            await trio.to_thread.run_sync(lambda: server_factory("--port", str(free_port)))
            await until_counts(client, queue_name, completed=4)
            await client.submit_many(queue_name, [{"payload": {"sleep": 0}} for _ in range(3)])
            await until_counts(client, queue_name, completed=7, claimed=0, pending=0)
            worker.stop()
        assert (await client.get_job(queue_name, in_flight.id)).retries == 0


async def test_the_log_says_what_the_server_did_with_a_failed_job(client, make_queue, queue_name, caplog):
    """A handler's failure asks for a retry; whether the job is retried or dead-lettered is the server's answer
    (the queue's max_retries), and that is what the worker's log line says."""
    caplog.set_level(logging.INFO, logger="starq.worker")
    await make_queue(max_retries=0)
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        raise ValueError("boom")

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, failed=1)
        worker.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "starq.worker" and job.id in r.getMessage()]
    assert len(lines) == 1, lines
    assert "dead-lettered" in lines[0] and "ValueError: boom" in lines[0], lines
    assert "retr" not in lines[0], lines
    assert worker.statistics().dead == 1


async def test_the_log_says_when_a_failed_job_will_be_retried(client, make_queue, queue_name, caplog):
    caplog.set_level(logging.INFO, logger="starq.worker")
    await make_queue(max_retries=1)
    job = await client.submit(queue_name, {"n": 1})

    async def handle(job):
        raise ValueError("boom")

    worker = Worker(client, queue_name, handle, **FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until_counts(client, queue_name, failed=1)
        worker.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "starq.worker" and job.id in r.getMessage()]
    assert len(lines) == 2, lines
    assert "will be retried" in lines[0] and "dead-lettered" not in lines[0], lines
    assert "dead-lettered" in lines[1] and "retried" not in lines[1], lines
