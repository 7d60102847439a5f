"""starq schedules: create, list, show, update, pause, resume, delete, and the jobs a schedule submits."""

from __future__ import annotations

import trio


async def test_create_list_and_show(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq(
        "schedules",
        "create",
        queue_name,
        "nightly",
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        '{"report": "daily"}',
        "-p",
        "5",
        "--key",
        "reports",
        "--unique-key",
        "nightly",
        "--unique-for",
        "600",
        "--timeout",
        "300",
        "--max-retries",
        "2",
        "--tag",
        "report",
        "--json",
    )
    assert ran.code == 0, ran.stderr
    made = ran.json()
    assert {k: made[k] for k in ("name", "queue", "cron", "every", "timezone", "payload", "paused", "priority")} == {
        "name": "nightly",
        "queue": queue_name,
        "cron": "0 3 * * *",
        "every": None,
        "timezone": "Europe/Berlin",
        "payload": {"report": "daily"},
        "paused": False,
        "priority": 5,
    }
    assert [made[k] for k in ("key", "unique_key", "unique_for", "timeout", "max_retries", "tags")] == [
        "reports",
        "nightly",
        600,
        300,
        2,
        ["report"],
    ]
    assert made["next_run_at"] and made["last_run_at"] == ""
    paused = await starq("schedules", "create", queue_name, "a-hourly", "--every", "3600", "--paused")
    assert paused.code == 0 and "paused\tyes" in paused.stdout.splitlines()

    listed = await starq("schedules", "list", queue_name)
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert lines[0] == ["name", "when", "paused", "next_run_at", "last_run_at", "payload"]
    assert [row[:3] for row in lines[1:]] == [
        ["a-hourly", "every 3600 s", "yes"],
        ["nightly", "0 3 * * * (Europe/Berlin)", "no"],
    ]
    assert lines[1][3] == "" and lines[2][3] == made["next_run_at"]  # a paused schedule has no next run
    as_json = (await starq("schedules", "list", queue_name, "--json")).json()["schedules"]
    assert [s["name"] for s in as_json] == ["a-hourly", "nightly"]
    shown = await starq("schedules", "show", queue_name, "nightly")
    assert "cron\t0 3 * * *" in shown.stdout.splitlines() and '"report": "daily"' in shown.stdout
    assert (await starq("schedules", "show", queue_name, "nightly", "--json")).json() == made


async def test_an_interval_schedule_submits_jobs(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq("schedules", "create", queue_name, "tick", "--every", "1", "--payload", '{"t": 1}', "--tag", "tk")
    assert ran.code == 0, ran.stderr
    with trio.fail_after(15):
        while not (jobs := (await starq("jobs", queue_name, "--tag", "tk", "--json")).json()["jobs"]):
            await trio.sleep(0.2)
    assert (jobs[0]["schedule"], jobs[0]["payload"]) == ("tick", {"t": 1})
    listed = (await starq("schedules", "list", queue_name)).stdout.splitlines()[1].split("\t")
    assert listed[4]  # last_run_at


async def test_update_pause_resume(starq, make_queue, queue_name):
    await make_queue()
    await starq("schedules", "create", queue_name, "s", "--cron", "0 * * * *", "--timeout", "60", "--tag", "a")
    changed = await starq("schedules", "update", queue_name, "s", "--every", "30", "--clear", "timeout", "--json")
    assert changed.code == 0, changed.stderr
    assert [changed.json()[k] for k in ("cron", "every", "timeout", "tags")] == [None, 30, None, ["a"]]
    again = await starq("schedules", "update", queue_name, "s", "--payload", '{"v": 2}', "--tag", "b", "--json")
    assert (again.json()["payload"], again.json()["tags"], again.json()["every"]) == ({"v": 2}, ["b"], 30)
    cleared = await starq("schedules", "update", queue_name, "s", "--clear", "tags", "--clear", "key", "--json")
    assert (cleared.json()["tags"], cleared.json()["key"]) == (None, None)

    assert (await starq("schedules", "pause", queue_name, "s")).stdout == f"Paused schedule s of queue {queue_name}\n"
    shown = (await starq("schedules", "show", queue_name, "s", "--json")).json()
    assert (shown["paused"], shown["next_run_at"]) == (True, "")
    resumed = await starq("schedules", "resume", queue_name, "s")
    assert resumed.code == 0 and resumed.stdout.startswith(f"Resumed schedule s of queue {queue_name}; next run 20")
    assert (await starq("schedules", "resume", queue_name, "s", "--json")).json()["paused"] is False


async def test_schedule_errors(starq, make_queue, queue_name):
    await make_queue()
    for args, message in [
        (("create", queue_name, "s"), "--cron EXPR or --every SECONDS"),
        (("create", queue_name, "s", "--cron", "* * * * *", "--every", "5"), "not both"),
        (("create", queue_name, "s", "--every", "0"), "--every"),
        (("create", queue_name, "s", "--every", "5", "--payload", "[]"), "JSON object"),
        (("update", queue_name, "s"), "at least one"),
        (("update", queue_name, "s", "--timeout", "5", "--clear", "timeout"), "contradicts"),
        (("update", queue_name, "s", "--clear", "payload"), "--clear"),
    ]:
        ran = await starq("schedules", *args)
        assert ran.code == 2 and message in ran.stderr, (args, ran.stderr)
    bad_cron = await starq("schedules", "create", queue_name, "s", "--cron", "every day")
    assert bad_cron.code == 1 and bad_cron.stderr.startswith("Error: ") and "cron" in bad_cron.stderr
    bad_zone = await starq("schedules", "create", queue_name, "s", "--cron", "0 3 * * *", "--timezone", "Nowhere/X")
    assert bad_zone.code == 1 and "timezone" in bad_zone.stderr
    assert (await starq("schedules", "create", queue_name, "s", "--every", "60")).code == 0
    exists = await starq("schedules", "create", queue_name, "s", "--every", "60")
    assert exists.code == 1 and "exists" in exists.stderr and exists.stderr.count("\n") == 1
    for command in ("show", "pause", "resume", "delete"):
        missing = await starq("schedules", command, queue_name, "nope", *(["-y"] if command == "delete" else []))
        assert missing.code == 1 and "not found" in missing.stderr, command
    assert (await starq("schedules", "list", queue_name + "-missing")).code == 1
    assert (await starq("schedules", "list", queue_name)).code == 0


async def test_delete_without_a_terminal_needs_yes(starq, make_queue, queue_name):
    await make_queue()
    await starq("schedules", "create", queue_name, "s", "--every", "60")
    refused = await starq("schedules", "delete", queue_name, "s", input="y\n")
    assert refused.code == 2 and "stdin is not a terminal: pass --yes" in refused.stderr
    assert (await starq("schedules", "show", queue_name, "s")).code == 0
    ran = await starq("schedules", "delete", queue_name, "s", "-y")
    assert ran.code == 0 and ran.stdout == f"Deleted schedule s of queue {queue_name}\n"
    assert (await starq("schedules", "list", queue_name)).stdout == "No schedules\n"
    await starq("schedules", "create", queue_name, "t", "--every", "60")
    assert (await starq("schedules", "delete", queue_name, "t", "-y", "--json")).json() == {
        "status": "deleted",
        "schedule": "t",
    }
