"""Failure triage from the command line: workers, bulk actions, a job's history as a table, inline submits."""

from __future__ import annotations

from cli.helpers import KEY
from cli.test_terminal import run_in_terminal


async def submit(starq, queue: str, n: int, *options: str) -> list[str]:
    ids = []
    for i in range(n):
        ran = await starq("submit", "-q", queue, "--payload", f'{{"n": {i}}}', *options, "--json")
        assert ran.code == 0, ran.stderr
        ids.append(ran.json()["jobs"][0]["id"])
    return ids


async def test_workers_lists_name_last_seen_and_jobs_in_hand(starq, make_queue, queue_name):
    await make_queue()
    assert (await starq("workers", queue_name)).stdout == f"No workers seen on {queue_name}\n"
    await submit(starq, queue_name, 3)
    two = (await starq("claim", queue_name, "-n", "2", "--worker", "alpha", "--json")).json()["jobs"]
    await starq("claim", queue_name, "--worker", "beta")
    await starq("complete", queue_name, two[0]["id"], "--lease-id", two[0]["lease_id"])
    plain = (await starq("workers", queue_name)).stdout.splitlines()
    assert plain[0].split("\t") == ["name", "last_seen", "ago", "jobs_in_hand"]
    rows = {line.split("\t")[0]: line.split("\t") for line in plain[1:]}
    assert sorted(rows) == ["alpha", "beta"]
    assert (rows["alpha"][3], rows["beta"][3]) == ("1", "1")
    assert rows["alpha"][1].endswith("Z") and rows["alpha"][2].endswith(" s")
    shown = (await starq("workers", queue_name, "--json")).json()
    assert {w["name"]: w["jobs_in_hand"] for w in shown["workers"]} == {"alpha": 1, "beta": 1}
    missing = await starq("workers", queue_name + "-missing")
    assert missing.code == 1 and "not found" in missing.stderr


async def test_bulk_cancel_retry_promote_and_delete(starq, make_queue, queue_name):
    await make_queue()
    a, b = await submit(starq, queue_name, 2)
    ran = await starq("bulk", queue_name, "--action", "cancel", a, b, "nope")
    assert ran.code == 1  # one was refused
    lines = ran.stdout.splitlines()
    assert lines[0].split("\t") == ["job_id", "ok", "status", "detail"]
    assert lines[1:3] == [f"{a}\tyes\tcancelled\t", f"{b}\tyes\tcancelled\t"]
    assert lines[3].startswith("nope\tno\tjob_not_found\t")
    assert ran.stderr == "cancel: 2 done, 1 refused\n"
    retried = await starq("bulk", queue_name, "-a", "retry", "-", input=f"{a}\n\n{b}\n")  # ids on stdin
    assert retried.code == 0, retried.stderr
    assert [line.split("\t")[:3] for line in retried.stdout.splitlines()[1:]] == [
        [a, "yes", "pending"],
        [b, "yes", "pending"],
    ]
    (later,) = await submit(starq, queue_name, 1, "--delay", "600")
    promoted = (await starq("bulk", queue_name, "-a", "promote", later, "--json")).json()
    assert promoted == {"results": [{"job_id": later, "ok": True, "status": "pending"}], "ok": 1, "errors": 0}


async def test_bulk_delete_needs_yes_without_a_terminal(starq, make_queue, queue_name):
    await make_queue()
    a, b = await submit(starq, queue_name, 2)
    await starq("cancel", queue_name, a)
    refused = await starq("bulk", queue_name, "-a", "delete", a, b)
    assert refused.code == 2 and refused.stdout == ""
    assert "bulk --action delete asks for confirmation and stdin is not a terminal: pass --yes" in refused.stderr
    assert (await starq("job", queue_name, a)).code == 0  # nothing was deleted
    deleted = (await starq("bulk", queue_name, "-a", "delete", a, b, "--yes", "--json")).json()
    assert (deleted["ok"], deleted["errors"]) == (1, 1)  # b is pending, not finished
    assert deleted["results"][0] == {"job_id": a, "ok": True, "status": "deleted"}
    assert (await starq("job", queue_name, a)).code == 1
    many = [f"gone-{i}" for i in range(1001)]  # more than one request takes
    sent = await starq("bulk", queue_name, "-a", "cancel", "-", "--json", input="\n".join(many))
    assert sent.code == 1 and sent.json()["errors"] == 1001
    assert [r["job_id"] for r in sent.json()["results"]] == many
    assert (await starq("bulk", queue_name, "-a", "archive", a)).code == 2  # not an action
    assert (await starq("bulk", queue_name, "-a", "retry", "-", input="\n")).code == 2  # no ids


async def test_bulk_on_a_terminal_asks_before_deleting(starq, server, make_queue, queue_name):
    await make_queue()
    (a,) = await submit(starq, queue_name, 1)
    await starq("cancel", queue_name, a)
    base = ("-u", server.url, "-k", KEY, "bulk", queue_name, "-a", "delete", a)
    code, screen = run_in_terminal(*base, answer=b"n\n")
    assert code == 1 and f"Delete 1 job(s) of queue '{queue_name}' for good?" in screen
    assert (await starq("job", queue_name, a)).code == 0
    code, screen = run_in_terminal(*base, answer=b"y\n")
    assert code == 0 and "deleted" in screen and "┏" in screen
    assert (await starq("job", queue_name, a)).code == 1


async def test_job_history_is_a_table(starq, server, make_queue, queue_name):
    await make_queue("--max-retries", "1")
    (job_id,) = await submit(starq, queue_name, 1)
    claimed = (await starq("claim", queue_name, "--worker", "w-7", "--json")).json()["jobs"][0]
    error = "Traceback (most recent call last):\n  File x\nValueError: boom"
    await starq("fail", queue_name, job_id, "-e", error, "--lease-id", claimed["lease_id"])
    plain = (await starq("job", queue_name, job_id)).stdout
    record, table = plain.split("\n\n")
    assert "history" not in record and f"id\t{job_id}" in record
    rows = [line.split("\t") for line in table.splitlines()]
    assert rows[0] == ["at", "event", "worker", "status", "error"]
    assert [r[1] for r in rows[1:]] == ["submitted", "claimed", "failed"]
    assert rows[2][2] == "w-7"
    assert rows[3][3:] == ["pending", "Traceback (most recent call last): …"]  # the first line, marked as cut
    as_json = (await starq("job", queue_name, job_id, "--json")).json()  # unchanged: the server's objects
    assert [e["event"] for e in as_json["history"]] == ["submitted", "claimed", "failed"]
    assert as_json["history"][2]["error"] == error
    code, screen = run_in_terminal("-u", server.url, "job", queue_name, job_id)
    assert code == 0 and "history" in screen and "┏" in screen and "w-7" in screen


async def test_inline_submit_with_run_at(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq("submit", "-q", queue_name, "--payload", '{"a": 1}', "--run-at", "2099-01-01T08:00:00+01:00")
    assert ran.code == 0 and ran.stdout.startswith("Submitted job ") and "(scheduled)" in ran.stdout
    job_id = ran.stdout.split()[2]
    shown = (await starq("job", queue_name, job_id, "--json")).json()
    assert (shown["status"], shown["run_at"], shown["payload"]) == ("scheduled", "2099-01-01T07:00:00.000Z", {"a": 1})
    both = await starq(
        "submit", "-q", queue_name, "--payload", "{}", "--run-at", "2099-01-01T08:00:00Z", "--delay", "1"
    )
    assert both.code == 2 and "not both" in both.stderr
