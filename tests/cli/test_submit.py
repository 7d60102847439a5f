"""submit: streaming a JSONL file in concurrent batches, bad lines, refusals, totals."""

from __future__ import annotations

import json


def jsonl(payloads) -> str:
    return "".join(json.dumps(p) + "\n" for p in payloads)


async def all_payloads(starq, queue: str) -> list[dict]:
    listed = (await starq("jobs", queue, "-l", "10000", "--json")).json()["jobs"]
    return [j["payload"] for j in listed]


async def test_submit_a_file_in_concurrent_batches(starq, make_queue, queue_name, tmp_path):
    await make_queue()
    path = tmp_path / "jobs.jsonl"
    path.write_text(jsonl({"n": i} for i in range(1, 251)) + "\n\n")  # blank lines are ignored
    ran = await starq("submit", str(path), "-q", queue_name, "-b", "7", "-c", "5", "--json")
    assert ran.code == 0, ran.stderr
    summary = ran.json()
    assert {k: summary[k] for k in ("submitted", "skipped", "bad_lines", "lines", "error")} == {
        "submitted": 250,
        "skipped": 0,
        "bad_lines": 0,
        "lines": 252,
        "error": "",
    }
    assert sorted(p["n"] for p in await all_payloads(starq, queue_name)) == list(range(1, 251))


async def test_one_batch_at_a_time_keeps_order_and_priority(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq(
        "submit", "-", "-q", queue_name, "-b", "2", "-c", "1", "-p", "7", input=jsonl({"n": i} for i in range(5))
    )
    assert ran.code == 0 and ran.stdout.startswith(f"Submitted 5 job(s) to '{queue_name}'")
    claimed = (await starq("claim", queue_name, "-n", "5", "--json")).json()["jobs"]
    assert [j["payload"]["n"] for j in claimed] == [0, 1, 2, 3, 4]
    assert {j["priority"] for j in claimed} == {7}


async def test_bad_line_stops_with_its_number(starq, make_queue, queue_name):
    await make_queue()
    lines = jsonl({"n": i} for i in range(1, 4)) + "{not json\n" + jsonl({"n": i} for i in range(5, 9))
    ran = await starq("submit", "-", "-q", queue_name, "-b", "2", input=lines)
    assert ran.code == 1
    assert ran.stderr.startswith("Error: line 4: not valid JSON")
    assert sorted(p["n"] for p in await all_payloads(starq, queue_name)) == [1, 2, 3]  # nothing after line 4
    assert "3 job(s)" in ran.stdout and "1 bad line" in ran.stdout


async def test_skip_bad_reports_each_and_goes_on(starq, make_queue, queue_name):
    await make_queue()
    lines = '{"n": 1}\n[1, 2]\n"text"\n{"n": 4}\n{oops\n{"n": 6}\n'
    ran = await starq("submit", "-", "-q", queue_name, "--skip-bad", "--json", input=lines)
    assert ran.code == 0
    assert ran.json()["submitted"] == 3 and ran.json()["bad_lines"] == 3
    assert ran.stderr.splitlines() == [
        "skipped line 2: a payload must be a JSON object, not list",
        "skipped line 3: a payload must be a JSON object, not str",
        next(line for line in ran.stderr.splitlines() if line.startswith("skipped line 5: not valid JSON")),
    ]
    assert sorted(p["n"] for p in await all_payloads(starq, queue_name)) == [1, 4, 6]


async def test_dedupe_skips_are_counted(starq, make_queue, queue_name):
    await make_queue("--dedupe")
    ran = await starq("submit", "-", "-q", queue_name, input=jsonl([{"a": 1}, {"a": 1}, {"a": 2}]))
    assert ran.code == 0 and "Submitted 2 job(s)" in ran.stdout and "1 skipped as duplicates" in ran.stdout


async def test_refused_batch_stops_the_submit(starq, queue_name):
    ran = await starq("submit", "-", "-q", queue_name, "-b", "2", input=jsonl({"n": i} for i in range(6)))
    assert ran.code == 1
    assert ran.stderr.startswith("Error: lines ") and "refused" in ran.stderr and "not found" in ran.stderr
    assert ran.stderr.count("\n") == 1


async def test_missing_file_and_missing_queue_option(starq, queue_name, tmp_path):
    assert (await starq("submit", str(tmp_path / "nope.jsonl"), "-q", queue_name)).code == 2
    assert (await starq("submit", "-", input="{}\n")).code == 2


async def test_job_options_apply_to_every_job_of_the_file(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq(
        "submit",
        "-",
        "-q",
        queue_name,
        "-b",
        "2",
        "-p",
        "4",
        "--key",
        "acct-1",
        "--timeout",
        "30",
        "--max-retries",
        "1",
        "--tag",
        "import",
        "--tag",
        "eu",
        "--delay",
        "3600",
        "--json",
        input=jsonl({"n": i} for i in range(5)),
    )
    assert ran.code == 0, ran.stderr
    assert ran.json()["submitted"] == 5
    listed = (await starq("jobs", queue_name, "--json")).json()["jobs"]
    assert len(listed) == 5
    for job in listed:
        assert (job["status"], job["priority"], job["key"], job["timeout"], job["max_retries"], job["tags"]) == (
            "scheduled",
            4,
            "acct-1",
            30,
            1,
            ["import", "eu"],
        )


async def test_run_at_and_unique_key_for_a_file(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq(
        "submit",
        "-",
        "-q",
        queue_name,
        "--run-at",
        "2099-01-01T08:00:00+01:00",
        "--unique-key",
        "nightly",
        "--unique-for",
        "600",
        input=jsonl({"n": i} for i in range(3)),
    )
    # One unique key for the whole file: the first job holds it, the others are skipped as its duplicates.
    assert ran.code == 0 and "Submitted 1 job(s)" in ran.stdout and "2 skipped as duplicates" in ran.stdout
    (job,) = (await starq("jobs", queue_name, "--json")).json()["jobs"]
    assert (job["run_at"], job["unique_key"], job["unique_for"]) == ("2099-01-01T07:00:00.000Z", "nightly", 600)


async def test_inline_payload_submits_one_job(starq, make_queue, queue_name):
    await make_queue()
    ran = await starq("submit", "-q", queue_name, "--payload", '{"to": "ada@example.com"}', "--unique-key", "ada")
    assert ran.code == 0, ran.stderr
    job_id = ran.stdout.split()[2]
    assert ran.stdout == f"Submitted job {job_id} to '{queue_name}' (pending)\n"
    shown = (await starq("job", queue_name, job_id, "--json")).json()
    assert (shown["payload"], shown["unique_key"]) == ({"to": "ada@example.com"}, "ada")
    again = await starq("submit", "-q", queue_name, "--payload", '{"to": "x"}', "--unique-key", "ada")
    assert again.stdout == f"Not submitted: a duplicate of job {job_id} (pending) in '{queue_name}'\n"
    answer = (await starq("submit", "-q", queue_name, "--payload", "{}", "-p", "9", "--delay", "60", "--json")).json()
    assert (answer["submitted"], answer["skipped"]) == (1, 0)
    assert (answer["jobs"][0]["status"], answer["jobs"][0]["priority"]) == ("scheduled", 9)


async def test_submit_usage_errors_send_nothing(starq, make_queue, queue_name, tmp_path):
    await make_queue()
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"n": 1}\n')
    for args, message in [
        ((), "give a FILE"),  # neither a file nor --payload
        ((str(path), "--payload", "{}"), "not both"),
        (("--payload", "{nope"), "not valid JSON"),
        (("--payload", "[1]"), "must be a JSON object"),
        ((str(path), "--delay", "5", "--run-at", "2099-01-01T00:00:00Z"), "--delay or --run-at"),
        ((str(path), "--run-at", "tomorrow"), "not an ISO 8601 time"),
        ((str(path), "--run-at", "2099-01-01T00:00:00"), "no time zone"),
        ((str(path), "--timeout", "0"), "--timeout"),
        ((str(path), *[a for i in range(17) for a in ("--tag", f"t{i}")]), "at most 16 tags"),
        ((str(path), "--key", "k" * 257), "--key"),
    ]:
        ran = await starq("submit", "-q", queue_name, *args)
        assert ran.code == 2 and message in ran.stderr, (args, ran.stderr)
    assert (await starq("info", queue_name, "--json")).json()["pending"] == 0
