"""Schedules: next run times (cron with seconds, time zones, DST, intervals), and runs that make exactly one job
per due time however many processes run them."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import trio

from engine.helpers import all_jobs, make_queue, make_unticked_queue, now_ms, payload_of, wait_until
from starq.server import schedules
from starq.server.engine.engine import DueSchedule
from starq.worker_kit.errors import QueueNotFound, ScheduleExists, ScheduleNotFound, ValidationFailed


def at(text: str, zone: str = "UTC") -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def test_six_fields_read_seconds_first():
    every_two = {"cron": "*/2 * * * * *"}
    start = at("2026-12-04T10:00:01")
    assert schedules.next_run_ms(every_two, start) == at("2026-12-04T10:00:02")
    assert schedules.next_run_ms({"cron": "30 * * * *"}, start) == at("2026-12-04T10:30:00")


def test_cron_times_are_read_in_the_schedules_time_zone_across_daylight_saving():
    daily = {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    # 2:30 does not exist on 29 March 2026 in Berlin (clocks jump from 2:00 to 3:00); croniter decides what then.
    before = schedules.next_run_ms(daily, at("2026-03-27T12:00:00", "Europe/Berlin"))
    assert before == at("2026-03-28T02:30:00", "Europe/Berlin")
    after = schedules.next_run_ms(daily, at("2026-03-30T12:00:00", "Europe/Berlin"))
    assert after == at("2026-03-31T02:30:00", "Europe/Berlin")
    assert after - before == 3 * 86400_000 - 3600_000  # one hour shorter: the spring transition lies between


def test_an_interval_keeps_its_rhythm_and_skips_what_was_missed():
    every = {"every": 10}
    assert schedules.next_run_ms(every, 1_000_000) == 1_010_000
    # Due at 1,000,000, run late at 1,047,000: the next run is the series' next time after now, not five runs.
    assert schedules.next_run_ms(every, 1_047_000, anchor_ms=1_000_000) == 1_050_000


@pytest.mark.parametrize(
    ("definition", "mentions"),
    [
        ({}, "exactly one of cron and every"),
        ({"cron": "* * * * *", "every": 5}, "exactly one of cron and every"),
        ({"cron": "61 * * * *"}, "not a valid expression"),
        ({"cron": "* * *"}, "not a valid expression"),
        ({"every": 5, "timezone": "Mars/Olympus"}, "not a known IANA time zone"),
    ],
)
def test_definitions_that_cannot_be_scheduled_are_refused(definition, mentions):
    with pytest.raises(ValidationFailed, match=mentions):
        schedules.check(definition)


async def test_create_read_update_delete(engine, queue_name):
    await make_queue(engine, queue_name)
    definition = {"every": 60, "payload": {"a": 1}, "paused": False, "tags": ["t"]}
    await engine.create_schedule(queue_name, "a", definition, now_ms() + 60_000)
    await engine.create_schedule(queue_name, "b", {**definition, "paused": True}, now_ms() + 60_000)
    with pytest.raises(ScheduleExists):
        await engine.create_schedule(queue_name, "a", definition, now_ms())
    listed = await engine.schedules(queue_name)
    assert [s.name for s in listed] == ["a", "b"] and listed[0].definition == definition
    await engine.update_schedule(queue_name, "a", {**definition, "every": 30}, now_ms() + 30_000)
    (a,) = await engine.schedules(queue_name, "a")
    assert a.definition["every"] == 30 and a.last_run_at == "" and a.last_job_id == ""
    await engine.delete_schedule(queue_name, "a")
    with pytest.raises(ScheduleNotFound):
        await engine.schedules(queue_name, "a")
    with pytest.raises(ScheduleNotFound):
        await engine.delete_schedule(queue_name, "a")


async def test_a_due_schedule_runs_once_however_many_processes_run_it(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name)
    definition = {"every": 3600, "payload": {"report": 1}, "priority": 4, "key": "k", "tags": ["nightly"]}
    due_ms = now_ms() - 10
    await engine.create_schedule(queue_name, "hourly", definition, due_ms)
    (due,) = (await engine.tick(queue_name)).schedules
    assert (due.name, due.due_ms) == ("hourly", due_ms)
    # Ten runners race for the same due time (as ten server processes would): one job.
    ran: list[int] = []
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(lambda: _run(engine, queue_name, due, ran))
    assert sum(ran) == 1
    (job,) = await all_jobs(engine, queue_name)
    assert payload_of(job) == {"report": 1} and job.priority == 4
    assert (job.fields["schedule"], job.fields["key"], job.fields["tags"]) == ("hourly", "k", '["nightly"]')
    (record,) = await engine.schedules(queue_name)
    assert record.last_job_id == job.id and record.last_run_at and record.next_ms > now_ms() + 3_000_000
    assert (await engine.tick(queue_name)).schedules == []


async def _run(engine, queue: str, due: DueSchedule, ran: list[int]) -> None:
    ran.append(await schedules.run_due(engine, queue, [due], now_ms()))


async def test_missed_runs_make_one_catch_up_job_then_go_on_from_now(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name)
    await engine.create_schedule(queue_name, "often", {"every": 1, "payload": {}}, now_ms() - 60_000)
    ticked = await engine.tick(queue_name)
    await schedules.run_due(engine, queue_name, ticked.schedules, now_ms())
    assert len(await all_jobs(engine, queue_name)) == 1  # not sixty
    (record,) = await engine.schedules(queue_name)
    assert now_ms() < record.next_ms <= now_ms() + 1000
    assert (await engine.tick(queue_name)).schedules == []


async def test_a_paused_schedule_never_comes_due(engine, queue_name, raw):
    await make_unticked_queue(engine, raw, queue_name)
    await engine.create_schedule(queue_name, "p", {"every": 1, "paused": True}, now_ms() - 5_000)
    assert (await engine.tick(queue_name)).schedules == []


async def test_the_maintenance_loop_runs_schedules(engine, queue_name, nursery):
    from starq.server.maintenance import maintain_forever

    await make_queue(engine, queue_name)
    started = now_ms()
    await engine.create_schedule(queue_name, "s", {"cron": "* * * * * *", "payload": {"tick": True}}, now_ms())
    await nursery.start(maintain_forever, engine)

    async def two_runs() -> list:
        jobs = await all_jobs(engine, queue_name)
        return jobs if len(jobs) >= 2 else []

    jobs = await wait_until(two_runs, timeout=20)
    # At most one job per due time: the first, then one per second boundary passed since (however late the
    # loop ran on a busy machine, a missed run makes one catch-up job, not one each).
    assert len(jobs) <= 1 + math.ceil((now_ms() - started) / 1000)
    assert all(j.fields["schedule"] == "s" for j in jobs)


async def test_deleting_a_queue_deletes_its_schedules(engine, queue_name, raw):
    await make_queue(engine, queue_name)
    await engine.create_schedule(queue_name, "s", {"every": 60}, now_ms() + 60_000)
    await engine.delete_queue(queue_name)
    assert not await raw.keys(f"starq:{{{queue_name}}}*")
    with pytest.raises(QueueNotFound):
        await engine.schedules(queue_name)
