"""health, queues, create, info, update, delete, pause, resume, purge — and how errors are reported."""

from __future__ import annotations

from starq.cli.queue_commands import create, update
from starq.worker_kit.protocol import QUEUE_DEFAULTS


async def test_health(starq):
    ran = await starq("health")
    assert ran.code == 0 and "status\tok" in ran.stdout
    assert (await starq("--json", "health")).json()["status"] == "ok"


async def test_unreachable_server_is_one_line_and_nonzero(starq, free_port):
    ran = await starq("health", url=f"http://127.0.0.1:{free_port}")
    assert ran.code == 1 and ran.stdout == ""
    assert ran.stderr.startswith("Error: cannot reach") and ran.stderr.count("\n") == 1


async def test_create_with_every_setting(starq, queue_name):
    ran = await starq(
        "create",
        queue_name,
        "-d",
        "outgoing mail",
        "--dedupe",
        "--max-retries",
        "7",
        "--claim-timeout",
        "45",
        "--retry-delay",
        "0.5",
        "--retry-delay-max",
        "20",
        "--retention",
        "3600",
        "--json",
    )
    assert ran.code == 0, ran.stderr
    info = ran.json()
    assert {
        k: info[k]
        for k in (
            "name",
            "description",
            "dedupe",
            "max_retries",
            "claim_timeout",
            "retry_delay",
            "retry_delay_max",
            "retention",
        )
    } == {
        "name": queue_name,
        "description": "outgoing mail",
        "dedupe": True,
        "max_retries": 7,
        "claim_timeout": 45,
        "retry_delay": 0.5,
        "retry_delay_max": 20,
        "retention": 3600,
    }


async def test_create_errors_print_the_servers_detail(starq, make_queue, queue_name):
    await make_queue()
    again = await starq("create", queue_name)
    assert again.code == 1 and again.stderr.startswith("Error: ") and "exists" in again.stderr
    assert again.stderr.count("\n") == 1
    bad = await starq("create", "Not A Name!")
    assert bad.code == 1 and "name" in bad.stderr
    no_key = await starq("create", queue_name + "-x", key=None)
    assert no_key.code == 1 and "X-API-Key" in no_key.stderr
    assert (await starq("create", queue_name, "--max-retries", "-1")).code == 2  # checked before sending


async def test_queues_lists_counts(starq, make_queue, queue_name):
    await make_queue()
    await starq("submit", "-", "-q", queue_name, input='{"a":1}\n{"a":2}\n')
    plain = await starq("queues")
    assert plain.stdout.splitlines()[0].split("\t") == [
        "name",
        "waiting",
        "pending",
        "scheduled",
        "claimed",
        "completed",
        "failed",
        "cancelled",
        "paused",
    ]
    row = next(line for line in plain.stdout.splitlines() if line.startswith(queue_name + "\t"))
    assert row.split("\t")[1:3] == ["0", "2"]
    listed = {q["name"]: q for q in (await starq("queues", "--json")).json()["queues"]}
    assert listed[queue_name]["pending"] == 2


async def test_info_and_update(starq, make_queue, queue_name):
    await make_queue("--max-retries", "2")
    info = await starq("info", queue_name)
    assert info.code == 0 and "max_retries\t2" in info.stdout
    updated = await starq("update", queue_name, "--max-retries", "9", "--no-dedupe", "--json")
    assert updated.json()["max_retries"] == 9
    assert (await starq("update", queue_name)).code == 2  # nothing to change
    missing = await starq("info", queue_name + "-missing")
    assert missing.code == 1 and "not found" in missing.stderr


async def test_pause_resume(starq, make_queue, queue_name):
    await make_queue()
    assert (await starq("pause", queue_name)).stdout == f"Paused queue {queue_name}\n"
    assert (await starq("info", queue_name, "--json")).json()["paused"] is True
    assert (await starq("resume", queue_name, "--json")).json()["paused"] is False
    assert (await starq("pause", queue_name + "-missing")).code == 1


async def test_delete(starq, make_queue, queue_name):
    await make_queue()
    for extra in ((), ("--json",)):
        refused = await starq("delete", queue_name, *extra, input="y\n")  # stdin is not a terminal: it cannot ask
        assert refused.code == 2 and refused.stdout == "" and refused.stderr.count("\n") == 1
        assert (
            refused.stderr
            == "Error: delete asks for confirmation and stdin is not a terminal: pass --yes to go ahead\n"
        )
    assert (await starq("info", queue_name)).code == 0  # nothing was deleted
    ran = await starq("delete", queue_name, "--yes")
    assert ran.code == 0 and ran.stdout == f"Deleted queue {queue_name}\n"
    assert (await starq("info", queue_name)).code == 1
    again = await starq("delete", queue_name, "-y", "--json")
    assert again.code == 1 and "not found" in again.stderr


async def test_flow_control_settings(starq, queue_name):
    ran = await starq(
        "create", queue_name, "--concurrency", "8", "--key-concurrency", "1", "--rate-limit", "10/1000", "--json"
    )
    assert ran.code == 0, ran.stderr
    info = ran.json()
    assert (info["concurrency"], info["key_concurrency"], info["rate_limit"]) == (8, 1, {"max": 10, "per_ms": 1000})
    shown = (await starq("info", queue_name)).stdout.splitlines()
    assert "concurrency\t8" in shown and "key_concurrency\t1" in shown and "rate_limit\t10 per 1000 ms" in shown
    changed = await starq("update", queue_name, "--rate-limit", "5/200", "--concurrency", "0", "--json")
    assert (changed.json()["rate_limit"], changed.json()["concurrency"]) == ({"max": 5, "per_ms": 200}, 0)
    # Another change leaves the limit alone; --no-rate-limit removes it.
    assert (await starq("update", queue_name, "-d", "x", "--json")).json()["rate_limit"] == {"max": 5, "per_ms": 200}
    cleared = await starq("update", queue_name, "--no-rate-limit")
    assert cleared.code == 0 and "rate_limit\tnone" in cleared.stdout.splitlines()
    assert "concurrency\t0 (no limit)" in cleared.stdout.splitlines()
    assert (await starq("info", queue_name, "--json")).json()["rate_limit"] is None


async def test_flow_control_usage_errors(starq, make_queue, queue_name):
    await make_queue()
    for args, message in [
        (("create", queue_name + "-x", "--rate-limit", "10"), "MAX/PER_MS"),
        (("create", queue_name + "-x", "--rate-limit", "ten/1000"), "MAX/PER_MS"),
        (("create", queue_name + "-x", "--rate-limit", "0/1000"), "MAX/PER_MS"),
        (("create", queue_name + "-x", "--concurrency", "-1"), "--concurrency"),
        (("update", queue_name, "--rate-limit", "1/1", "--no-rate-limit"), "not both"),
    ]:
        ran = await starq(*args)
        assert ran.code == 2 and message in ran.stderr, (args, ran.stderr)
    assert (await starq("info", queue_name + "-x")).code == 1  # nothing was created
    too_fast = await starq("create", queue_name + "-y", "--rate-limit", "1/999999999")
    assert too_fast.code == 1 and "per_ms" in too_fast.stderr  # the server's limit, in one line


async def _finished(starq, queue: str, n: int) -> None:
    ran = await starq("submit", "-", "-q", queue, input="".join(f'{{"n": {i}}}\n' for i in range(n)))
    assert ran.code == 0, ran.stderr
    for job in (await starq("claim", queue, "-n", str(n), "--json")).json()["jobs"]:
        assert (await starq("complete", queue, job["id"], "--lease-id", job["lease_id"])).code == 0


async def test_purge_with_yes(starq, make_queue, queue_name):
    await make_queue()
    await _finished(starq, queue_name, 3)
    await starq("submit", "-q", queue_name, "--payload", "{}")
    ran = await starq("purge", queue_name, "--status", "completed", "--yes")
    assert ran.code == 0 and ran.stdout == f"Purged 3 completed job(s) from {queue_name}\n"
    info = (await starq("info", queue_name, "--json")).json()
    assert (info["completed"], info["pending"]) == (0, 1)
    assert (await starq("purge", queue_name, "-s", "pending", "-y", "--json")).json() == {
        "status": "ok",
        "queue": queue_name,
        "purged": 1,
    }
    assert (await starq("purge", queue_name, "-s", "claimed", "-y")).code == 2  # not a purgeable status
    missing = await starq("purge", queue_name + "-missing", "-s", "failed", "-y")
    assert missing.code == 1 and "not found" in missing.stderr


async def test_purge_refuses_without_yes_when_stdin_is_not_a_terminal(starq, make_queue, queue_name):
    await make_queue()
    await _finished(starq, queue_name, 2)
    for extra in ((), ("--json",)):
        ran = await starq("purge", queue_name, "-s", "completed", *extra, input="y\n")  # a pipe cannot confirm
        assert ran.code == 2 and ran.stdout == ""
        assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("Error: ") and "pass --yes" in ran.stderr
    assert (await starq("info", queue_name, "--json")).json()["completed"] == 2  # nothing was purged


def test_settings_help_states_the_server_defaults():
    """The help of create's and update's settings ends with each setting's default as the protocol declares it."""
    for command in (create, update):
        helps = {p.name: getattr(p, "help", None) or "" for p in command.params}
        for name in ("max_retries", "claim_timeout", "retry_delay_max", "concurrency", "events_max"):
            assert helps[name].endswith(f" [server default: {QUEUE_DEFAULTS[name]}]."), helps[name]
        assert helps["retention"].endswith(f" [server default: {QUEUE_DEFAULTS['retention']}, 7 days].")
        assert helps["rate_limit"].endswith(" [server default: none].")
