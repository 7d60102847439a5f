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
