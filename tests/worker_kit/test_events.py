"""``client.events``: a queue's event stream against real servers: replay, live events, resume after the server
goes away (no event lost or repeated), ``dropped`` notices, and the errors that end it."""

from __future__ import annotations

import pytest
import trio

from starq.worker_kit import Backoff, Event, QueueNotFound, RetryPolicy, StarqClient
from worker_kit.helpers import KEY


async def take(stream, count: int, timeout: float = 10.0) -> list[Event]:
    got: list[Event] = []
    with trio.fail_after(timeout):
        async for event in stream:
            got.append(event)
            if len(got) == count:
                break
    return got


async def test_replay_then_live_events(client, make_queue, queue_name):
    await make_queue(events=True)
    submitted = await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(3)])
    async with client.events(queue_name, since=0) as stream:
        replayed = await take(stream, 3)
        assert [(e.id, e.kind, e.data["job_id"]) for e in replayed] == [
            (i + 1, "submitted", job.id) for i, job in enumerate(submitted.jobs)
        ]
        assert replayed[0].data["status"] == "pending" and replayed[0].data["at"]
        assert stream.last_id == 3
        (job,) = await client.claim(queue_name)
        await client.complete(queue_name, job.id, "ok", lease_id=job.lease_id)
        claimed, completed = await take(stream, 2)
    assert (claimed.id, claimed.kind, completed.id, completed.kind) == (4, "claimed", 5, "completed")
    assert completed.data["job_id"] == submitted.jobs[0].id and completed.data["status"] == "completed"


async def test_a_stream_from_now_carries_no_past_events(client, make_queue, queue_name):
    await make_queue(events=True)
    await client.submit(queue_name, {"old": True})
    got: list[Event] = []

    async def read() -> None:
        async with client.events(queue_name) as stream:
            got.extend(await take(stream, 1))

    # New jobs until the reader has an event (when it connects is its own affair): the first it gets is one of
    # theirs; a stream that replayed the past would hand out the old job's first.
    new: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        with trio.fail_after(30):
            while not got:
                new.append((await client.submit(queue_name, {"new": True})).id)
                await trio.sleep(0.2)
    (event,) = got
    assert event.kind == "submitted" and event.data["job_id"] in new
    assert event.id == 2 + new.index(event.data["job_id"])  # the old job's event is 1


async def test_the_stream_resumes_after_the_server_goes_away(server, server_factory, free_port, queue_name):
    """The stream's server stops (SIGTERM ends the stream); meanwhile another server adds events. The stream
    reconnects once its server is back and hands out exactly the events it had not: none lost, none twice."""
    first = server_factory("--port", str(free_port))
    patient = RetryPolicy(attempts=100, backoff=Backoff(0.05, 0.3))
    async with (
        StarqClient(f"http://127.0.0.1:{free_port}", KEY, retry=patient) as near,
        StarqClient(server.url, KEY) as other,
    ):
        await near.create_queue(queue_name, events=True)
        first_job = await near.submit(queue_name, {"n": 0})
        async with near.events(queue_name, since=0) as stream:
            (event,) = await take(stream, 1)
            assert (event.id, event.data["job_id"]) == (1, first_job.id)
            await trio.to_thread.run_sync(first.stop)
            while_down = await other.submit_many(queue_name, [{"payload": {"n": i}} for i in (1, 2)])
            await trio.to_thread.run_sync(lambda: server_factory("--port", str(free_port)))
            after = await near.submit(queue_name, {"n": 3})
            resumed = await take(stream, 3, timeout=20)
    assert [e.id for e in resumed] == [2, 3, 4]
    assert [e.data["job_id"] for e in resumed] == [*(j.id for j in while_down.jobs), after.id]


async def test_a_reader_behind_the_cap_gets_a_dropped_notice(client, make_queue, queue_name):
    await make_queue(events=True, events_max=100)
    for _ in range(4):
        await client.submit_many(queue_name, [{"payload": {"i": i}} for i in range(100)])
    async with client.events(queue_name, since=10) as stream:
        dropped, first = await take(stream, 2)
        assert (dropped.kind, dropped.id) == ("dropped", None)
        assert first.id is not None and dropped.data["after"] == 10 and dropped.data["oldest"] == first.id > 11
        assert "dropped" in dropped.data["detail"]
        assert first.kind == "submitted" and stream.last_id == first.id


async def test_errors_end_the_stream(client, make_queue, queue_name):
    with pytest.raises(QueueNotFound):
        async with client.events(queue_name + "-none", since=0) as stream:
            await take(stream, 1)
    await make_queue(events=True)
    await client.submit(queue_name, {})
    with pytest.raises(QueueNotFound):
        async with client.events(queue_name, since=0) as stream:
            await take(stream, 1)
            await client.delete_queue(queue_name)
            await take(stream, 1)


async def test_closing_ends_the_iteration(client, make_queue, queue_name):
    await make_queue(events=True)
    stream = client.events(queue_name, since=0)
    await client.submit(queue_name, {})
    assert len(await take(stream, 1)) == 1
    await stream.aclose()
    with trio.fail_after(2):
        assert [e async for e in stream] == []
