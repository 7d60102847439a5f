"""jobs, job, claim, complete, fail, release, retry, cancel, promote."""

from __future__ import annotations

import json


async def submit(starq, queue: str, payloads: list[dict]) -> None:
    # One batch at a time: these tests rely on the jobs being created in the file's order.
    ran = await starq("submit", "-", "-q", queue, "-c", "1", input="".join(json.dumps(p) + "\n" for p in payloads))
    assert ran.code == 0, ran.stderr


async def test_claim_complete_and_show(starq, make_queue, queue_name):
    await make_queue()
    await submit(starq, queue_name, [{"n": 1}, {"n": 2}])
    claimed = (await starq("claim", queue_name, "-n", "2", "--block-ms", "100", "--json")).json()["jobs"]
    assert [j["payload"]["n"] for j in claimed] == [1, 2] and all(j["lease_id"] for j in claimed)
    first, second = claimed
    done = await starq("complete", queue_name, first["id"], "-r", '{"sent": true}', "--lease-id", first["lease_id"])
    assert done.code == 0 and done.stdout == f"Job {first['id']} completed\n"
    shown = (await starq("job", queue_name, first["id"], "--json")).json()
    assert (shown["status"], shown["result"]) == ("completed", {"sent": True})
    human = await starq("job", queue_name, first["id"])
    assert "status\tcompleted" in human.stdout and '"sent": true' in human.stdout
    # No lease given: the server accepts it for a claimed job.
    assert (await starq("complete", queue_name, second["id"], "--json")).json() == {
        "status": "completed",
        "job_id": second["id"],
    }


async def test_claim_plain_and_empty(starq, make_queue, queue_name):
    await make_queue()
    assert (await starq("claim", queue_name)).stdout == "No jobs to claim\n"
    await submit(starq, queue_name, [{"n": 1}])
    plain = await starq("claim", queue_name)
    assert plain.stdout.splitlines()[0] == "id\tlease_id\tlease_expires_at\tretries\tpayload"
    assert (await starq("claim", queue_name, "-n", "101")).code == 2
    assert (await starq("claim", queue_name + "-missing")).code == 1


async def test_complete_and_fail_errors(starq, make_queue, queue_name):
    await make_queue()
    await submit(starq, queue_name, [{"n": 1}])
    job = (await starq("claim", queue_name, "--json")).json()["jobs"][0]
    bad_json = await starq("complete", queue_name, job["id"], "-r", "{nope")
    assert bad_json.code == 2 and "not valid JSON" in bad_json.stderr
    stale = await starq("complete", queue_name, job["id"], "--lease-id", "not-the-lease")
    assert stale.code == 1 and "no longer current" in stale.stderr
    missing = await starq("fail", queue_name, "no-such-job", "-e", "x")
    assert missing.code == 1 and "not found" in missing.stderr


async def test_fail_retry_and_dead_letter(starq, make_queue, queue_name):
    await make_queue("--max-retries", "3")
    await submit(starq, queue_name, [{"n": 1}])
    job = (await starq("claim", queue_name, "--json")).json()["jobs"][0]
    retried = await starq("fail", queue_name, job["id"], "-e", "smtp down", "--lease-id", job["lease_id"], "--json")
    assert retried.json() == {"status": "pending", "job_id": job["id"], "retries": 1}
    job = (await starq("claim", queue_name, "--json")).json()["jobs"][0]
    dead = await starq("fail", queue_name, job["id"], "-e", "bad address", "--no-retry")
    assert dead.code == 0 and dead.stdout == f"Job {job['id']} is now failed (retries: 1)\n"
    shown = (await starq("job", queue_name, job["id"], "--json")).json()
    assert (shown["status"], shown["error"]) == ("failed", "bad address")


async def test_retry_one_and_all_failed(starq, make_queue, queue_name):
    await make_queue("--max-retries", "0")
    await submit(starq, queue_name, [{"n": i} for i in range(3)])
    for job in (await starq("claim", queue_name, "-n", "3", "--json")).json()["jobs"]:
        await starq("fail", queue_name, job["id"], "--lease-id", job["lease_id"])
    failed = (await starq("jobs", queue_name, "-s", "failed", "--json")).json()["jobs"]
    assert len(failed) == 3
    one = await starq("retry", queue_name, failed[0]["id"])
    assert one.stdout == f"Job {failed[0]['id']} is now pending\n"
    rest = await starq("retry", queue_name, "--all-failed", "--json")
    assert rest.json() == {"status": "ok", "queue": queue_name, "retried": 2}
    assert (await starq("retry", queue_name)).code == 2
    assert (await starq("retry", queue_name, failed[0]["id"], "--all-failed")).code == 2
    not_dead = await starq("retry", queue_name, failed[0]["id"])
    assert not_dead.code == 1 and not_dead.stderr.startswith("Error: ")


async def test_cancel(starq, make_queue, queue_name):
    await make_queue()
    await submit(starq, queue_name, [{"n": 1}, {"n": 2}])
    pending = (await starq("jobs", queue_name, "--json")).json()["jobs"]
    cancelled = await starq("cancel", queue_name, pending[0]["id"])
    assert cancelled.code == 0 and cancelled.stdout == f"Job {pending[0]['id']} cancelled\n"
    # A claimed job is cancelled too (its worker learns it at its next report); a finished one is refused.
    claimed = (await starq("claim", queue_name, "--json")).json()["jobs"][0]
    assert (await starq("cancel", queue_name, claimed["id"])).code == 0
    refused = await starq("cancel", queue_name, claimed["id"])
    assert refused.code == 1 and "cancelled" in refused.stderr and refused.stderr.count("\n") == 1


async def test_jobs_follows_cursors(starq, make_queue, queue_name):
    await make_queue()
    await submit(starq, queue_name, [{"n": i} for i in range(620)])
    listed = (await starq("jobs", queue_name, "-l", "600", "--json")).json()
    assert len(listed["jobs"]) == 600 and listed["has_more"] and listed["cursor"]
    assert [j["payload"]["n"] for j in listed["jobs"][:2]] == [619, 618]  # newest first
    rest = (await starq("jobs", queue_name, "--cursor", listed["cursor"], "-l", "100", "--json")).json()
    assert [j["payload"]["n"] for j in rest["jobs"]] == list(range(19, -1, -1)) and rest["has_more"] is False
    plain = await starq("jobs", queue_name, "-l", "3", "-s", "pending")
    assert plain.stdout.splitlines()[0].split("\t") == ["id", "status", "retries", "priority", "created_at", "payload"]
    assert len(plain.stdout.splitlines()) == 4 and "--cursor" in plain.stderr
    assert (await starq("jobs", queue_name, "-s", "bogus")).code == 2
    assert (await starq("jobs", queue_name + "-missing")).code == 1


async def test_job_errors_and_json_anywhere(starq, make_queue, queue_name):
    await make_queue()
    missing = await starq("job", queue_name, "no-such-job")
    assert missing.code == 1 and missing.stderr.startswith("Error: ") and "not found" in missing.stderr
    assert (await starq("job", queue_name + "-missing", "x")).code == 1
    # --json works before or after the command name
    assert (await starq("--json", "info", queue_name)).json() == (await starq("info", queue_name, "--json")).json()


async def test_release_gives_a_claimed_job_back(starq, make_queue, queue_name):
    await make_queue()
    await submit(starq, queue_name, [{"n": 1}, {"n": 2}])
    first, second = (await starq("claim", queue_name, "-n", "2", "--json")).json()["jobs"]
    ran = await starq("release", queue_name, first["id"], "--lease-id", first["lease_id"])
    assert ran.code == 0 and ran.stdout == f"Job {first['id']} is now pending\n"
    shown = (await starq("job", queue_name, first["id"], "--json")).json()
    assert (shown["status"], shown["retries"]) == ("pending", 0)
    assert [e["event"] for e in shown["history"]] == ["submitted", "claimed", "released"]
    later = await starq(
        "release", queue_name, second["id"], "--lease-id", second["lease_id"], "--delay", "600", "--json"
    )
    assert later.json() == {"status": "scheduled", "job_id": second["id"]}
    stale = await starq("release", queue_name, first["id"], "--lease-id", "not-the-lease")
    assert stale.code == 1 and stale.stderr.startswith("Error: ") and stale.stderr.count("\n") == 1
    assert (await starq("release", queue_name, first["id"])).code == 2  # the lease is required


async def test_promote_a_scheduled_job(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq("submit", "-q", queue_name, "--payload", '{"n": 1}', "--delay", "3600", "--json")
    job_id = ran.json()["jobs"][0]["id"]
    promoted = await starq("promote", queue_name, job_id)
    assert promoted.code == 0 and promoted.stdout == f"Job {job_id} is now pending\n"
    assert (await starq("job", queue_name, job_id, "--json")).json()["status"] == "pending"
    again = await starq("promote", queue_name, job_id, "--json")
    assert again.code == 1 and again.stdout == "" and again.stderr.startswith("Error: ")
    assert (await starq("promote", queue_name, "no-such-job")).code == 1


async def test_jobs_by_tag_and_search(starq, make_queue, queue_name):
    await make_queue()
    vip = "".join(json.dumps({"to": f"user{i}@example.com"}) + "\n" for i in range(3))
    ran = await starq("submit", "-", "-q", queue_name, "-c", "1", "--tag", "vip", input=vip)
    assert ran.code == 0, ran.stderr
    await submit(starq, queue_name, [{"to": "someone@else.org"}])
    tagged = (await starq("jobs", queue_name, "--tag", "vip", "--json")).json()
    assert [j["payload"]["to"] for j in tagged["jobs"]] == [f"user{i}@example.com" for i in (2, 1, 0)]
    found = (await starq("jobs", queue_name, "--search", "ELSE.org", "--json")).json()["jobs"]
    assert [j["payload"]["to"] for j in found] == ["someone@else.org"]
    both = await starq("jobs", queue_name, "--tag", "vip", "--search", "user1", "-s", "pending")
    lines = both.stdout.splitlines()
    assert len(lines) == 2 and "user1@example.com" in lines[1]
    assert (await starq("jobs", queue_name, "--tag", "nope")).stdout == "No jobs\n"
