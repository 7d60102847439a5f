"""A failed job's traceback (the job's ``error`` and the worker's log line) shows the handler's frames, not the
worker kit's, Trio's, anyio's or asyncio's; the exception's type, message and causes stay. On both loops, for an
async handler and a sync one (whose exception crosses back from a thread), and for an error the kit's client
raised inside the handler."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
from typing import Any

import anyio
import anyio.lowlevel
import outcome
import pytest
import trio

import starq.worker_kit
from starq.worker_kit import Backoff, JobNotFound, RunningJob, StarqClient, Worker
from starq.worker_kit.outcomes import user_traceback
from worker_kit.helpers import FAST_RETRY, KEY

# Where the frames that must not show live: the kit's modules, and the event loops' packages.
MACHINERY_PATH = re.compile(
    "|".join(
        re.escape(f'File "{os.path.dirname(str(package.__file__))}/')
        for package in (starq.worker_kit, trio, anyio, asyncio, outcome)
    )
)


def parse_payload(payload: dict) -> int:
    try:
        return int(payload["n"])
    except KeyError as exc:
        raise ValueError("the payload has no n") from exc


def sync_handler(job: RunningJob) -> Any:
    return parse_payload(job.payload)


async def async_handler(job: RunningJob) -> Any:
    await anyio.lowlevel.checkpoint()
    return parse_payload(job.payload)


async def run_failing(url: str, queue: str, handler: Any) -> str:
    """Runs one job that fails in ``handler`` and returns its stored error."""
    async with StarqClient(url, KEY, timeout=10, retry=FAST_RETRY) as client:
        await client.create_queue(queue, max_retries=0)
        job = await client.submit(queue, {"m": 1})
        if handler is None:  # the handler asks the client for a job that does not exist

            async def handler(job: RunningJob) -> Any:
                return await client.get_job(queue, "no-such-job")

        worker = Worker(client, queue, handler, backoff=Backoff(0.05, 0.5), block_ms=500)
        async with anyio.create_task_group() as tasks:
            await tasks.start(worker.run)
            failed = await client.wait(queue, job.id, timeout=30)
            worker.stop()
        assert failed.status == "failed"
        return failed.error


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_traceback_shows_the_handlers_frames(server, queue_name, backend, kind, caplog):
    caplog.set_level(logging.INFO, logger="starq.worker")
    handler = async_handler if kind == "async" else sync_handler
    run = functools.partial(anyio.run, run_failing, server.url, queue_name, handler, backend=backend)
    error = await trio.to_thread.run_sync(run)
    logged = [r.getMessage() for r in caplog.records if "failed (dead-lettered)" in r.getMessage()]
    assert len(logged) == 1 and logged[0].endswith(error), logged
    assert error.startswith("ValueError: the payload has no n\n\n"), error
    assert not MACHINERY_PATH.search(error), error
    frames = re.findall(r'File "[^"]*", line \d+, in (\w+)', error)
    # The cause (KeyError) first, then the exception it caused: only this file's functions in each.
    assert frames == ["parse_payload", f"{kind}_handler", "parse_payload"], error
    assert "The above exception was the direct cause of the following exception" in error
    assert error.rstrip().endswith("ValueError: the payload has no n")
    assert "KeyError: 'n'" in error


async def test_an_error_from_the_kits_client_shows_the_call_in_the_handler(server, queue_name):
    run = functools.partial(anyio.run, run_failing, server.url, queue_name, None, backend="asyncio")
    error = await trio.to_thread.run_sync(run)
    assert error.startswith("JobNotFound: "), error
    assert not MACHINERY_PATH.search(error), error
    assert re.findall(r'File "[^"]*", line \d+, in (\w+)', error) == ["handler"], error
    assert 'return await client.get_job(queue, "no-such-job")' in error


async def test_exception_groups_keep_each_members_own_frames():
    async def fails(n: int) -> None:
        raise ValueError(f"member {n}")

    with pytest.raises(ExceptionGroup) as group:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fails, 1)
            nursery.start_soon(fails, 2)
    text = user_traceback(group.value)
    assert not MACHINERY_PATH.search(text), text
    assert text.count(", in fails") == 2 and "ValueError: member 1" in text and "ValueError: member 2" in text
    assert "ExceptionGroup" in text


def test_the_kits_own_errors_are_not_hidden_from_a_plain_traceback():
    """Only frames are dropped: an exception raised by the kit itself keeps its type and message."""
    try:
        raise JobNotFound("job x not found")
    except JobNotFound as exc:
        text = user_traceback(exc)
    assert text.rstrip().endswith("JobNotFound: job x not found") and "in test_the_kits_own_errors" in text
