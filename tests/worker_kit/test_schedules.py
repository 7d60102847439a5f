"""StarqClient's schedules against a real ``starq serve``: create, list, show, update, pause, resume, delete, and
the jobs a schedule submits."""

from __future__ import annotations

import pytest

from starq.worker_kit import QueueNotFound, Schedule, ScheduleExists, ScheduleNotFound, ValidationFailed
from worker_kit.helpers import wait_for


async def test_an_interval_schedule_submits_jobs_with_its_options(client, make_queue, queue_name):
    await make_queue()
    made = await client.create_schedule(
        queue_name, "tick", every=1, payload={"report": "daily"}, priority=3, key="k", timeout=60, tags=["sched"]
    )
    assert isinstance(made, Schedule)
    assert (made.name, made.queue, made.cron, made.every, made.timezone, made.paused) == (
        "tick",
        queue_name,
        None,
        1,
        "UTC",
        False,
    )
    assert (made.payload, made.priority, made.key, made.timeout, made.tags, made.unique_key) == (
        {"report": "daily"},
        3,
        "k",
        60,
        ["sched"],
        None,
    )
    assert made.next_run_at and made.last_run_at == "" and made.raw["name"] == "tick" and made.when == "every 1 s"

    async def ran() -> bool:
        return (await client.get_queue(queue_name)).pending >= 1

    await wait_for(ran, timeout=10)
    job = (await client.list_jobs(queue_name)).jobs[-1]
    assert (job.schedule, job.payload, job.priority, job.key, job.timeout, job.tags) == (
        "tick",
        {"report": "daily"},
        3,
        "k",
        60,
        ["sched"],
    )
    shown = await client.get_schedule(queue_name, "tick")
    assert shown.last_run_at and shown.last_job_id


async def test_list_update_pause_resume_delete(client, make_queue, queue_name):
    await make_queue()
    await client.create_schedule(queue_name, "nightly", cron="0 3 * * *", timezone="Europe/Berlin", paused=True)
    await client.create_schedule(queue_name, "a-first", every=3600, max_retries=1, unique_key="once", unique_for=60)
    assert [s.name for s in await client.list_schedules(queue_name)] == ["a-first", "nightly"]  # by name
    nightly = await client.get_schedule(queue_name, "nightly")
    assert (nightly.paused, nightly.next_run_at, nightly.when) == (True, "", "0 3 * * * (Europe/Berlin)")

    resumed = await client.resume_schedule(queue_name, "nightly")
    assert resumed.paused is False and resumed.next_run_at
    paused = await client.pause_schedule(queue_name, "nightly")
    assert (paused.paused, paused.next_run_at) == (True, "")

    # An interval replaces the cron expression; None removes a job option; the rest stays.
    changed = await client.update_schedule(queue_name, "a-first", cron="*/5 * * * *", max_retries=None, priority=4)
    assert (changed.cron, changed.every, changed.max_retries, changed.priority, changed.unique_key) == (
        "*/5 * * * *",
        None,
        None,
        4,
        "once",
    )
    retagged = await client.update_schedule(queue_name, "a-first", every=30, tags=["x"])
    assert (retagged.cron, retagged.every, retagged.tags) == (None, 30, ["x"])

    assert await client.delete_schedule(queue_name, "a-first") == {"status": "deleted", "schedule": "a-first"}
    assert [s.name for s in await client.list_schedules(queue_name)] == ["nightly"]
    with pytest.raises(ScheduleNotFound):
        await client.get_schedule(queue_name, "a-first")


async def test_schedule_errors(client, make_queue, queue_name):
    await make_queue()
    await client.create_schedule(queue_name, "one", every=60)
    with pytest.raises(ScheduleExists):
        await client.create_schedule(queue_name, "one", every=60)
    with pytest.raises(ValidationFailed, match="cron"):
        await client.create_schedule(queue_name, "two")  # neither cron nor every
    with pytest.raises(ValidationFailed, match="cron"):
        await client.create_schedule(queue_name, "two", cron="not a cron")
    with pytest.raises(ValidationFailed, match="timezone"):
        await client.create_schedule(queue_name, "two", cron="0 * * * *", timezone="Mars/Olympus")
    with pytest.raises(TypeError, match="not a schedule field: evry"):
        await client.update_schedule(queue_name, "one", evry=5)
    with pytest.raises(ScheduleNotFound):
        await client.update_schedule(queue_name, "missing", paused=True)
    with pytest.raises(ScheduleNotFound):
        await client.delete_schedule(queue_name, "missing")
    with pytest.raises(QueueNotFound):
        await client.list_schedules(queue_name + "-missing")
