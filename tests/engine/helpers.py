"""Helpers of the engine tests: queues with chosen settings, submitting payloads, reading every job back, and
polling for a condition."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Sequence
from typing import Any

import trio

from starq.server.engine.engine import dedupe_hash
from starq.server.engine.keys import CHANNELS
from starq.server.engine.models import STATUSES, JobOptions, NewJob, new_job_id


async def make_queue(engine, name: str, **settings: Any):
    return await engine.create_queue(name, settings)


def new_job(payload: dict, priority: int = 0, run_at_ms: int = 0, **options: Any) -> NewJob:
    """A job to submit; ``options`` are JobOptions' (key, unique_key, unique_for, timeout, max_retries, tags,
    depends_on, on_dependency_failure)."""
    text = json.dumps(payload)
    return NewJob(payload=text, priority=priority, run_at_ms=run_at_ms, dedupe_hash=dedupe_hash(payload),
                  options=JobOptions(**options).to_json())  # fmt: skip


async def submit(engine, queue: str, *payloads: dict, priority: int = 0, run_at_ms: int = 0, **options: Any):
    """Submits the payloads as one batch, each with the same options; returns the engine's ``Submitted`` list."""
    jobs = [new_job(p, priority, run_at_ms, **options) for p in payloads]
    return await engine.submit(queue, jobs, [new_job_id() for _ in jobs])


async def submit_jobs(engine, queue: str, jobs: Sequence[NewJob]):
    return await engine.submit(queue, list(jobs), [new_job_id() for _ in jobs])


def payload_of(job) -> dict:
    return json.loads(job.payload)


async def drain(engine, queue: str, worker: str = "") -> list:
    """Claims until nothing is ready; returns every job claimed."""
    out = []
    while batch := await engine.claim(queue, 100, worker):
        out += batch
    return out


async def all_jobs(engine, queue: str, status: str = "") -> list:
    """Every job of the queue (newest first) by walking list_jobs pages."""
    out, cursor = [], ""
    while True:
        page = await engine.list_jobs(queue, status, 500, cursor)
        out += page.jobs
        if not page.has_more:
            return out
        cursor = page.cursor


async def assert_counts_true(engine, queue: str) -> dict[str, int]:
    """The O(1) counts of queue_info equal what list_jobs finds, for every status."""
    info = await engine.queue_info(queue)
    everything = await all_jobs(engine, queue)
    truth = dict.fromkeys(STATUSES, 0)
    for job in everything:
        truth[job.status] += 1
    assert info.counts == truth
    for status in STATUSES:
        assert len(await all_jobs(engine, queue, status)) == truth[status]
    return truth


def now_ms() -> int:
    """The engine's "now" in milliseconds. The store runs on this machine, so its clock is ours (and coredis
    6.9 misreads TIME's microseconds, so the local clock is the more exact one)."""
    return int(time.time() * 1000)


async def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02):
    """Polls a predicate (plain or async) until it returns a truthy value; fails the test after ``timeout`` (a
    bound on a broken condition, generous for a busy machine: it is never how long a test takes)."""
    with trio.move_on_after(timeout):
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await trio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


async def make_unticked_queue(engine, raw, name: str, **settings: Any):
    """A queue that only the test itself ticks: it is left out of the registry of queue names, which the
    maintenance loop of every ``starq serve`` process on the shared test store walks. Tests that assert what
    ``Engine.tick`` did use it, so a server started by another test cannot do that work first."""
    info = await make_queue(engine, name, **settings)
    await raw.srem("starq:queues", [name])
    return info


async def published_during(engine, raw, action) -> list[tuple[str, str]]:
    """The notifications, as ``(channel name, message)``, published on every channel while ``action`` runs (other
    tests' too, on the shared store: filter them).

    No fixed waits: a marker published before the action shows the subscription is live, and one published after
    it arrives only after everything published before it (a subscriber gets messages in publish order), so a
    notification missing from the list was not published, however slow the machine."""
    seen: list[tuple[str, str]] = []
    before, after = (f"marker {new_job_id()}" for _ in range(2))
    async with engine.subscribe() as messages:

        async def until(marker: str) -> None:
            async for channel, message in messages:
                if message == marker:
                    return
                if message != before:  # (the marker's repeats)
                    seen.append((channel, message))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(until, before)
                while nursery.child_tasks:  # the subscription may go live after a marker went out: send again
                    await raw.publish(CHANNELS["ready"], before)
                    await trio.sleep(0.05)
            seen.clear()  # what came before the action
            await action()
            await raw.publish(CHANNELS["ready"], after)
            await until(after)
    return seen
