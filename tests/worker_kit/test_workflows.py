"""The client's workflow calls against a real server: dependencies, batches, progress (from the client, and from
a Worker's handlers), waiting for an outcome."""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from starq.worker_kit import (
    Backoff,
    BatchNotFound,
    JobCancelled,
    JobNotFound,
    LeaseLost,
    QueueNotFound,
    RetryPolicy,
    RunningJob,
    StarqClient,
    TooLarge,
    ValidationFailed,
    Worker,
)
from starq.worker_kit.protocol import MAX_WAIT_MS
from worker_kit.helpers import KEY

GHOST = "01900000-0000-7000-8000-000000000000"  # a well-formed job id no queue has


async def finish(client: StarqClient, queue: str, count: int, *, fail: bool = False) -> list[str]:
    """Claims ``count`` jobs and completes them (or dead-letters them); returns their ids."""
    jobs = await client.claim(queue, count=count)
    assert len(jobs) == count
    for job in jobs:
        if fail:
            await client.fail(queue, job.id, "broken", lease_id=job.lease_id, retry=False)
        else:
            await client.complete(queue, job.id, {"n": job.payload["n"]}, lease_id=job.lease_id)
    return [j.id for j in jobs]


async def test_a_graph_in_one_batch_with_a_callback(client, make_queue, queue_name):
    await make_queue()
    submitted = await client.submit_many(
        queue_name,
        [
            {"payload": {"n": 0}},
            {"payload": {"n": 1}, "depends_on": ["#0"]},
            {"payload": {"n": 2}, "depends_on": ["#0"]},
            {"payload": {"n": 3}, "depends_on": ["#1", "#2"]},
        ],
        batch={"callback": {"payload": {"report": "done"}, "priority": 7}},
    )
    fetch, resize, thumb, publish = submitted.jobs
    assert [j.status for j in submitted.jobs] == ["pending", "waiting", "waiting", "waiting"]
    assert (resize.depends_on, publish.depends_on) == ([fetch.id], [resize.id, thumb.id])
    assert submitted.batch_id and {j.batch_id for j in submitted.jobs} == {submitted.batch_id}
    assert (await client.get_queue(queue_name)).waiting == 3
    assert sorted((await client.get_job(queue_name, fetch.id)).raw["dependents"]) == sorted([resize.id, thumb.id])
    batch = await client.get_batch(queue_name, submitted.batch_id)
    assert (batch.total, batch.pending, batch.finished, batch.finished_at) == (4, 4, False, "")
    assert batch.callback_job_id and batch.raw["id"] == submitted.batch_id

    assert await finish(client, queue_name, 1) == [fetch.id]  # only fetch could be claimed
    assert sorted(await finish(client, queue_name, 2)) == sorted([resize.id, thumb.id])
    assert await finish(client, queue_name, 1) == [publish.id]
    batch = await client.get_batch(queue_name, submitted.batch_id)
    assert (batch.finished, batch.completed, batch.pending) == (True, 4, 0) and batch.finished_at
    callback = await client.get_job(queue_name, batch.callback_job_id)
    assert callback.priority == 7
    assert callback.payload == {
        "report": "done",
        "batch": {"id": submitted.batch_id, "total": 4, "completed": 4, "failed": 0, "cancelled": 0},
    }


async def test_shared_and_per_item_dependencies_and_what_a_failure_does(client, make_queue, queue_name):
    await make_queue(max_retries=0)
    first = await client.submit(queue_name, {"n": 0})
    single = await client.submit(queue_name, {"n": 1}, depends_on=[first.id], on_dependency_failure="run")
    assert (single.status, single.depends_on, single.on_dependency_failure) == ("waiting", [first.id], "run")
    many = await client.submit_many(
        queue_name,
        [{"payload": {"n": 2}}, {"payload": {"n": 3}, "on_dependency_failure": "cancel"}],
        depends_on=[first.id],  # shared: every item waits for the first job
        on_dependency_failure="run",
    )
    assert [(j.depends_on, j.on_dependency_failure) for j in many.jobs] == [([first.id], "run"), ([first.id], "cancel")]
    assert many.batch_id == ""
    await finish(client, queue_name, 1, fail=True)  # the dependency is dead-lettered
    after = {j.payload["n"]: j async for j in client.iter_jobs(queue_name)}
    assert (after[1].status, after[2].status) == ("pending", "pending")  # "run": they run anyway
    assert after[3].status == "cancelled" and after[3].error == f"dependency {first.id} was dead-lettered"


async def test_dependency_mistakes(client, make_queue, queue_name):
    await make_queue()
    with pytest.raises(ValueError, match="#i"):
        await client.submit_many(queue_name, [{"payload": {}}], depends_on=["#0"])
    with pytest.raises(TypeError, match="list of job ids"):
        await client.submit(queue_name, {}, depends_on=GHOST)
    with pytest.raises(ValidationFailed, match=r"jobs\[1\]\.depends_on\[0\]"):
        await client.submit_many(queue_name, [{"payload": {}}, {"payload": {}, "depends_on": [GHOST]}])
    with pytest.raises(ValidationFailed, match="on_dependency_failure"):
        await client.submit(queue_name, {}, depends_on=[GHOST], on_dependency_failure="ignore")
    assert (await client.get_queue(queue_name)).pending == 0  # nothing was stored


async def test_a_batch_without_callback_and_batch_errors(client, make_queue, queue_name):
    await make_queue()
    plain = await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(3)], batch=True)
    batch = await client.get_batch(queue_name, plain.batch_id)
    assert (batch.total, batch.callback_job_id, batch.finished) == (3, None, False)
    with pytest.raises(QueueNotFound, match=r"batch\.callback\.queue"):
        await client.submit_many(queue_name, [{"payload": {}}], batch={"callback": {"queue": queue_name + "-none"}})
    with pytest.raises(BatchNotFound):
        await client.get_batch(queue_name, GHOST)


async def test_a_callback_to_another_queue(client, make_queue, queue_name):
    await make_queue()
    other = await make_queue(queue_name + "-cb")
    submitted = await client.submit_many(
        queue_name, [{"payload": {"n": 1}}], batch={"callback": {"payload": {"to": "ops"}, "queue": other.name}}
    )
    await finish(client, queue_name, 1)
    callback_id = (await client.get_batch(queue_name, submitted.batch_id)).callback_job_id
    assert callback_id
    with trio.fail_after(10):
        while True:  # the callback goes through the queue's outbox, which the server drains within about a second
            try:
                callback = await client.get_job(other.name, callback_id)
                break
            except JobNotFound:
                await trio.sleep(0.1)
    assert callback.payload["to"] == "ops" and callback.payload["batch"]["completed"] == 1


async def test_progress_under_a_lease(client, make_queue, queue_name):
    await make_queue()
    submitted = await client.submit(queue_name, {"n": 1})
    (job,) = await client.claim(queue_name)
    assert job.progress is None
    assert await client.progress(queue_name, job.id, 12.5, lease_id=job.lease_id) == "claimed"
    assert (await client.get_job(queue_name, job.id)).progress == 12.5
    await client.progress(queue_name, job.id, {"parts": 3, "of": 10}, lease_id=job.lease_id)
    assert (await client.get_job(queue_name, job.id)).progress == {"parts": 3, "of": 10}
    with pytest.raises(LeaseLost):
        await client.progress(queue_name, job.id, 1, lease_id="not-the-lease")
    with pytest.raises(TooLarge):
        await client.progress(queue_name, job.id, {"x": "y" * 70_000}, lease_id=job.lease_id)
    await client.cancel(queue_name, submitted.id)
    with pytest.raises(JobCancelled):
        await client.progress(queue_name, job.id, 50, lease_id=job.lease_id)


async def test_wait_answers_when_the_job_finishes(client, make_queue, queue_name):
    await make_queue()
    submitted = await client.submit(queue_name, {"n": 1})
    got = []

    async def waiter() -> None:
        started = trio.current_time()
        got.append(await client.wait(queue_name, submitted.id))
        got.append(trio.current_time() - started)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.5)
        assert not got
        (job,) = await client.claim(queue_name)
        await client.complete(queue_name, job.id, {"ok": True}, lease_id=job.lease_id)
    done, took = got
    assert (done.status, done.result, done.finished) == ("completed", {"ok": True}, True)
    # Woken by the completion, not by the server's hold running out (MAX_WAIT_MS, a minute): the bound leaves
    # room for a busy machine's claim, completion and wake-up.
    assert 0.5 <= took < 10


async def test_wait_times_out_with_the_job_as_it_is(client, make_queue, queue_name):
    await make_queue()
    submitted = await client.submit(queue_name, {"n": 1})
    started = trio.current_time()
    job = await client.wait(queue_name, submitted.id, timeout=0.6)
    took = trio.current_time() - started
    assert (job.status, job.finished) == ("pending", False)
    assert 0.6 <= took < 10  # at its timeout, not held for the server's minute (room for a busy machine)
    started = trio.current_time()
    assert (await client.wait(queue_name, submitted.id, timeout=0)).status == "pending"
    assert trio.current_time() - started < 10  # one read, no hold
    await client.cancel(queue_name, submitted.id)
    assert (await client.wait(queue_name, submitted.id, timeout=30)).status == "cancelled"  # at once


class Recorder(httpx.AsyncBaseTransport):
    """The network, recording the wait_ms of every GET of a job."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.waits: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/jobs/" in request.url.path:
            self.waits.append(int(request.url.params.get("wait_ms", 0)))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_wait_asks_again_after_an_early_answer_and_across_a_restart(server_factory, free_port, queue_name):
    """A server shutting down answers every wait at once with the job as it is: the client asks again, and goes
    on waiting through the restart, in requests of at most MAX_WAIT_MS."""
    first = server_factory("--port", str(free_port))
    recorder = Recorder()
    patient = RetryPolicy(attempts=60, backoff=Backoff(0.05, 0.5))  # rides out the restart
    url = f"http://127.0.0.1:{free_port}"
    async with StarqClient(url, KEY, retry=patient, transport=recorder) as client:
        await client.create_queue(queue_name)
        submitted = await client.submit(queue_name, {"n": 1})
        got = []

        async def waiter() -> None:
            got.append(await client.wait(queue_name, submitted.id))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(first.stop)  # SIGTERM: the parked wait is answered now, unfinished
            assert not got
            await trio.to_thread.run_sync(lambda: server_factory("--port", str(free_port)))
            await trio.sleep(0.5)
            assert not got
            (job,) = await client.claim(queue_name)
            await client.complete(queue_name, job.id, "late", lease_id=job.lease_id)
        (done,) = got
    assert (done.status, done.result) == ("completed", "late")
    assert recorder.waits and all(0 < w <= MAX_WAIT_MS for w in recorder.waits), recorder.waits
    assert recorder.waits[0] == MAX_WAIT_MS and len(recorder.waits) >= 2


async def test_wait_for_a_job_that_does_not_exist(client, make_queue, queue_name):
    await make_queue()
    with pytest.raises(JobNotFound):
        await client.wait(queue_name, GHOST, timeout=1)


# -- job.progress inside a Worker's handler ----------------------------------------------------------------------


def make_worker(client: StarqClient, queue: str, handle) -> Worker:
    return Worker(client, queue, handle, backoff=Backoff(0.05, 0.5), block_ms=1000)  # quick to stop


async def run_until(worker: Worker, done) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        with trio.fail_after(15):
            while not await done():
                await trio.sleep(0.05)
        worker.stop()


async def test_an_async_handler_reports_progress(client, make_queue, queue_name):
    await make_queue(events=True)
    submitted = await client.submit(queue_name, {"parts": 3})
    seen = []

    async def handle(job: RunningJob):
        seen.append(job.progress.last)
        for part in range(job.payload["parts"]):
            await job.progress({"done": part + 1, "of": 3})
            seen.append((await client.get_job(queue_name, job.id)).progress)
        seen.append(job.progress.last)
        return "ok"

    worker = make_worker(client, queue_name, handle)
    await run_until(worker, lambda: _finished(client, queue_name, submitted.id))
    assert seen == [None, {"done": 1, "of": 3}, {"done": 2, "of": 3}, {"done": 3, "of": 3}, {"done": 3, "of": 3}]
    done = await client.get_job(queue_name, submitted.id)
    assert (done.status, done.progress) == ("completed", {"done": 3, "of": 3})
    async with client.events(queue_name, since=0) as stream:
        kinds = [e.kind for e in await _take(stream, 5)]
    assert kinds == ["submitted", "claimed", "progress", "progress", "progress"]


async def test_a_sync_handler_reports_progress_without_await(client, make_queue, queue_name):
    await make_queue()
    submitted = await client.submit(queue_name, {})
    seen = []

    def handle(job: RunningJob):
        for value in (10, 55.5):
            job.progress(value)
            seen.append(job.progress.last)
        return "ok"

    worker = make_worker(client, queue_name, handle)
    await run_until(worker, lambda: _finished(client, queue_name, submitted.id))
    assert seen == [10, 55.5]
    done = await client.get_job(queue_name, submitted.id)
    assert (done.status, done.progress) == ("completed", 55.5)


async def cancel_while_running(client: StarqClient, queue: str, handle, started: trio.Event) -> None:
    """Runs ``handle`` on one job, cancels the job once the handler has ``started``, and waits until the worker
    counted it as cancelled."""
    job = await client.submit(queue, {})
    worker = make_worker(client, queue, handle)
    asked = False

    async def cancelled() -> bool:
        nonlocal asked
        if not asked:
            await started.wait()
            await client.cancel(queue, job.id)
            asked = True
        return worker.statistics().cancelled == 1

    await run_until(worker, cancelled)
    assert (await client.get_job(queue, job.id)).status == "cancelled"


async def test_a_cancelled_job_stops_at_its_next_progress_report(client, make_queue, queue_name):
    await make_queue()
    stopped: dict[str, str] = {}
    started = trio.Event()

    def sync_handle(job: RunningJob):
        trio.from_thread.run_sync(started.set)
        try:
            for i in range(200):
                job.progress(i)
                time.sleep(0.05)
        except JobCancelled:
            stopped["sync"] = "JobCancelled"
            raise
        stopped["sync"] = "ran to the end"

    await cancel_while_running(client, queue_name, sync_handle, started)
    started = trio.Event()

    async def async_handle(job: RunningJob):
        started.set()
        try:
            for i in range(200):
                await job.progress(i)
                await trio.sleep(0.05)
        except trio.Cancelled:
            stopped["async"] = "Cancelled"
            raise
        stopped["async"] = "ran to the end"

    await cancel_while_running(client, queue_name, async_handle, started)
    with trio.fail_after(5):
        while len(stopped) < 2:  # the abandoned thread gets JobCancelled at its next report
            await trio.sleep(0.05)
    assert stopped == {"sync": "JobCancelled", "async": "Cancelled"}


async def _finished(client: StarqClient, queue: str, job_id: str) -> bool:
    return (await client.get_job(queue, job_id)).finished


async def _take(stream, count: int) -> list:
    got = []
    with trio.fail_after(10):
        async for event in stream:
            got.append(event)
            if len(got) == count:
                break
    return got
