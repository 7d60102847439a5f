"""Workflow commands: submit with dependencies and as a batch with a callback, job (its dependencies, dependents,
progress and batch), batch, wait (its exit status) and events (replay, live, dropped notices)."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import trio

from cli.helpers import KEY, starq_process

GHOST = "01900000-0000-7000-8000-000000000000"  # a well-formed job id no queue has


async def one_job(starq, queue: str, *options: str) -> dict:
    ran = await starq("submit", "-q", queue, "--payload", "{}", *options, "--json")
    assert ran.code == 0, ran.stderr
    (job,) = ran.json()["jobs"]
    return job


async def claim_and(starq, queue: str, verb: str, *args: str) -> dict:
    (job,) = (await starq("claim", queue, "--json")).json()["jobs"]
    ran = await starq(verb, queue, job["id"], "--lease-id", job["lease_id"], *args)
    assert ran.code == 0, ran.stderr
    return job


async def test_submit_with_dependencies_and_show_them(starq, make_queue, queue_name):
    await make_queue()
    first = await one_job(starq, queue_name)
    second = await one_job(starq, queue_name)
    waiting = await one_job(
        starq, queue_name, "--depends-on", first["id"], "--depends-on", second["id"], "--on-dependency-failure", "run"
    )
    assert (waiting["status"], waiting["depends_on"]) == ("waiting", [first["id"], second["id"]])
    assert waiting["on_dependency_failure"] == "run"
    shown = await starq("job", queue_name, first["id"])
    assert f"dependents\t{waiting['id']}\n" in shown.stdout
    shown = await starq("job", queue_name, waiting["id"])
    assert f"depends_on\t{first['id']} {second['id']}\n" in shown.stdout and "status\twaiting" in shown.stdout
    assert (await starq("jobs", queue_name, "-s", "waiting", "--json")).json()["jobs"][0]["id"] == waiting["id"]

    unknown = await starq("submit", "-q", queue_name, "--payload", "{}", "--depends-on", GHOST)
    assert unknown.code == 1 and unknown.stderr.startswith("Error: ") and "depends_on[0]" in unknown.stderr
    assert (await starq("submit", "-q", queue_name, "--payload", "{}", "--depends-on", "#0")).code == 2
    too_many = [arg for _ in range(101) for arg in ("--depends-on", GHOST)]
    assert (await starq("submit", "-q", queue_name, "--payload", "{}", *too_many)).code == 2
    bad_choice = await starq("submit", "-q", queue_name, "--payload", "{}", "--on-dependency-failure", "skip")
    assert bad_choice.code == 2


async def test_a_file_as_a_batch_with_a_callback(starq, make_queue, queue_name):
    await make_queue()
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(3))
    ran = await starq(
        "submit", "-", "-q", queue_name, "--callback-payload", '{"report": true}', "--callback-priority", "5", "--json",
        input=lines,
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    summary = ran.json()
    assert (summary["submitted"], summary["error"]) == (3, "") and summary["batch_id"]
    batch_id = summary["batch_id"]
    shown = await starq("batch", queue_name, batch_id)
    assert shown.code == 0 and "total\t3" in shown.stdout and "finished\tno" in shown.stdout
    for _ in range(3):
        await claim_and(starq, queue_name, "complete")
    batch = (await starq("batch", queue_name, batch_id, "--json")).json()
    assert (batch["finished"], batch["completed"], batch["pending"]) == (True, 3, 0)
    callback = (await starq("job", queue_name, batch["callback_job_id"], "--json")).json()
    assert callback["priority"] == 5 and callback["payload"]["report"] is True
    assert callback["payload"]["batch"] == {"id": batch_id, "total": 3, "completed": 3, "failed": 0, "cancelled": 0}

    plain = await starq("submit", "-", "-q", queue_name, "--batch", input=lines)
    assert plain.code == 0 and " as batch " in plain.stdout
    one = await starq("submit", "-q", queue_name, "--payload", "{}", "--batch")
    assert one.code == 0 and " in batch " in one.stdout
    missing = await starq("batch", queue_name, GHOST)
    assert missing.code == 1 and missing.stderr.startswith("Error: ") and missing.stderr.count("\n") == 1
    nowhere = await starq("submit", "-", "-q", queue_name, "--callback-queue", queue_name + "-none", input=lines)
    assert nowhere.code == 1 and "batch.callback.queue" in nowhere.stderr


async def test_a_batch_is_sent_whole_or_not_at_all(starq, make_queue, queue_name):
    await make_queue()
    bad = await starq("submit", "-", "-q", queue_name, "--batch", input='{"n": 1}\nnot json\n')
    assert bad.code == 1 and "nothing was sent" in bad.stderr
    big = "".join('{"n": 1}\n' for _ in range(1001))
    assert "at most 1000 jobs" in (await starq("submit", "-", "-q", queue_name, "--batch", input=big)).stderr
    empty = await starq("submit", "-", "-q", queue_name, "--batch", input="")
    assert empty.code == 1 and "no jobs" in empty.stderr
    assert (await starq("info", queue_name, "--json")).json()["pending"] == 0


async def test_wait_exit_status_tells_the_outcome(starq, make_queue, queue_name, server):
    await make_queue("--max-retries", "0")
    job = await one_job(starq, queue_name)
    started = trio.current_time()
    timed_out = await starq("wait", queue_name, job["id"], "--timeout", "0.5")
    assert timed_out.code == 124 and timed_out.stdout == f"Job {job['id']} is still pending after 0.5 s\n"
    assert 0.5 <= trio.current_time() - started < 5

    got = []

    async def waiter() -> None:
        got.append(await starq("wait", queue_name, job["id"], "--json"))

    # The CLI runs in-process and swaps sys.stdout while it runs: only the waiter runs it meanwhile; the job is
    # claimed and completed over plain HTTP.
    async with (
        trio.open_nursery() as nursery,
        httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": KEY}) as http,
    ):
        nursery.start_soon(waiter)
        await trio.sleep(0.3)
        assert not got
        jobs_url = f"/api/v1/queues/{queue_name}/jobs"
        (claimed,) = (await http.post(f"{jobs_url}/claim", json={"count": 1})).json()["jobs"]
        completed = await http.put(
            f"{jobs_url}/{claimed['id']}/complete", json={"lease_id": claimed["lease_id"], "result": {"sent": 1}}
        )
        assert completed.status_code == 200, completed.text
    (done,) = got
    assert done.code == 0 and done.json()["result"] == {"sent": 1}
    assert (await starq("wait", queue_name, job["id"])).stdout == f'Job {job["id"]} completed: {{"sent":1}}\n'

    failing = await one_job(starq, queue_name)
    await claim_and(starq, queue_name, "fail", "-e", "broken")
    failed = await starq("wait", queue_name, failing["id"])
    assert failed.code == 3 and failed.stdout == f"Job {failing['id']} failed: broken\n"

    cancelled = await one_job(starq, queue_name)
    await starq("cancel", queue_name, cancelled["id"])
    assert (await starq("wait", queue_name, cancelled["id"], "--timeout", "10")).code == 4
    missing = await starq("wait", queue_name, GHOST)
    assert missing.code == 1 and missing.stderr.startswith("Error: ")


async def test_events_replay_as_jsonl_and_as_columns(starq, make_queue, queue_name):
    await make_queue("--events")
    job = await one_job(starq, queue_name)
    await claim_and(starq, queue_name, "complete")
    ran = await starq("events", queue_name, "--since", "0", "--no-follow", "--json")
    assert ran.code == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(e["id"], e["event"]) for e in lines] == [(1, "submitted"), (2, "claimed"), (3, "completed")]
    assert {e["data"]["job_id"] for e in lines} == {job["id"]}
    plain = await starq("events", queue_name, "--since", "2", "--no-follow")
    header, row = plain.stdout.splitlines()
    assert header.split("\t") == ["id", "at", "event", "job_id", "status", "detail"]
    assert row.split("\t")[:1] + row.split("\t")[2:5] == ["3", "completed", job["id"], "completed"]

    off = queue_name + "-quiet"
    await make_queue(name=off)
    quiet = await starq("events", off, "--no-follow")
    assert quiet.code == 0 and "keeps no event log" in quiet.stderr and quiet.stdout.startswith("id\t")
    updated = await starq("update", off, "--events", "--events-max", "500", "--json")
    assert (updated.json()["events"], updated.json()["events_max"]) == (True, 500)
    assert (await starq("update", off, "--events-max", "5")).code == 2  # below the setting's minimum
    missing = await starq("events", queue_name + "-none")
    assert missing.code == 1 and "not found" in missing.stderr


async def test_events_announce_dropped_events(starq, make_queue, queue_name):
    await make_queue("--events", "--events-max", "100")
    for _ in range(4):
        lines = "".join(json.dumps({"i": i}) + "\n" for i in range(100))
        assert (await starq("submit", "-", "-q", queue_name, input=lines)).code == 0
    as_json = await starq("events", queue_name, "--since", "10", "--no-follow", "--json")
    first, second = (json.loads(line) for line in as_json.stdout.splitlines()[:2])
    assert (first["event"], first["id"], first["data"]["after"]) == ("dropped", None, 10)
    assert second["id"] == first["data"]["oldest"]
    plain = await starq("events", queue_name, "--since", "10", "--no-follow")
    assert "Dropped: events 11 to" in plain.stderr


def test_events_follow_until_ctrl_c(server, queue_name):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}) as http:
        assert http.post("/api/v1/queues", json={"name": queue_name, "events": True}).status_code == 201
        proc = starq_process(
            "-u", server.url, "-k", KEY, "events", queue_name, "--since", "0", "--json",
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            submitted = http.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {}}).json()["jobs"][0]
            first = json.loads(proc.stdout.readline())
            assert (first["event"], first["data"]["job_id"]) == ("submitted", submitted["id"])
            cancelled = http.delete(f"/api/v1/queues/{queue_name}/jobs/{submitted['id']}")
            assert cancelled.status_code == 200
            assert json.loads(proc.stdout.readline())["event"] == "cancelled"  # live, long after the replay
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()
            proc.wait()
