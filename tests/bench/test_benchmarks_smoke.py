"""The benchmark suite's smoke runs (``python -m benchmarks run --quick``, and an A/B run against this very
commit): they must keep working, every scenario must produce its row, and every exactly-once check must pass.
Speed is reported, never asserted."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder of the repository, not an installed package (it runs as ``python -m benchmarks`` from
# the repository's root, which pytest's ``pythonpath`` puts on sys.path after tests/).
from benchmarks import harness, report, scenarios, storecalls, workflow_scenarios

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_covers_every_scenario_exactly_once(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = tmp_path.glob("quick-*.json")
    result = json.loads(path.read_text())
    rows = result["combined"]
    kinds = {row.get("kind") for row in rows}
    assert {
        "trivial",
        "stock",
        "ceiling",
        "store_submit",
        "store_complete",
        "store_ack",
        "submit_1",
        "submit_100",
        "submit_1000",
        "cycle_1_complete",
        "cycle_5_complete",
        "cycle_50_ack",
        "other_info",
        "other_job",
        "other_list",
        "other_extend",
        "flow_plain",
        "flow_keys",
        "retry_0",
        "retry_1",
        "maint_retention",
        "maint_due",
    } <= kinds
    assert any(k.startswith("longpoll_") for k in kinds)
    assert any(k.startswith("outcomes_") for k in kinds)
    assert {f"events_{path}_{on}" for path, _ in workflow_scenarios.EVENT_PATHS for on in ("on", "off")} <= kinds
    rates = [row for row in rows if row["kind"].startswith("flow_rate_")]
    assert len(rates) == 2 and all(row["rate_limit_held"] is True for row in rates), rates
    (keyed,) = [row for row in rows if row["kind"] == "flow_keys"]
    assert keyed["key_order_held"] is True
    assert all(row["requests_per_s"] > 0 for row in rows if row["group"] == "other")
    assert {row["name"] for row in rows if row["group"] == "scale"} == {
        "--workers 1",
        "--workers 2",
        "--workers 1, 2 connections",
    }
    for row in rows:
        if "exactly_once" in row:
            assert row["exactly_once"] is True, row
        assert row.get("errors", 0) == 0, row
    # Maintenance: every finished record of the burst was removed, every due job promoted (and each handed to
    # exactly one claim), within the phase's catch-up limit; how fast is reported, not asserted.
    (retention,) = [row for row in rows if row["kind"] == "maint_retention"]
    assert retention["all_gone"] is True and retention["measured_seconds"] is not None, retention
    (due,) = [row for row in rows if row["kind"] == "maint_due"]
    assert due["all_promoted"] is True and due["submitted_before_due"] is True, due
    assert due["measured_seconds"] is not None and due["first_claim_seconds"] is not None, due
    assert "| maintenance |" in proc.stdout
    longpoll = next(row for row in rows if row["group"] == "longpoll")
    assert longpoll["woken"] > 0 and longpoll["release_seconds"] is not None
    targets = {t["target"] for t in result["targets"]}
    assert any("stock hypercorn-trio" in t for t in targets) and any("--workers 2" in t for t in targets)
    assert "| scenario |" in proc.stdout and "| target |" in proc.stdout
    assert "| other routes" in proc.stdout and "| flow control" in proc.stdout
    assert "| hot path" in proc.stdout and "| outcome waiters" in proc.stdout
    assert result["runs"][0]["rows"][0]["load_before"]  # the machine's load is recorded with every row


def test_quick_run_of_the_workflow_groups(tmp_path):
    """``--only events,outcomes``: each hot path with the event log off and on, the log holding every event the
    phase made; every outcome waiter answered once with its own job's outcome (completed, failed, cancelled)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--quick", "--only", "events,outcomes", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = tmp_path.glob("quick-*.json")
    rows = json.loads(path.read_text())["combined"]
    events = [row for row in rows if row["group"] == "events"]
    assert [(row["kind"], row["events"]) for row in events] == [
        (f"events_{path}_{on}", on == "on") for path, _ in workflow_scenarios.EVENT_PATHS for on in ("off", "on")
    ]
    for row in events:
        assert row["exactly_once"] is True and row["jobs_per_s"] > 0, row
        if row["events"]:
            assert row["events_logged"] == row["events_expected"] > 0, row
            assert row["vs_off"] > 0 and "server_cpu_us_per_event" in row, row
    (waits,) = [row for row in rows if row["group"] == "outcomes"]
    assert waits["exactly_once"] is True, waits
    assert waits["answered"] == waits["waiters"] == sum(waits["outcomes"].values())
    assert all(n > 0 for n in waits["outcomes"].values()), waits["outcomes"]  # completed, failed and cancelled
    assert waits["park_seconds"] is not None and waits["wake_seconds"] is not None and waits["left_waiting"] == 0
    assert "| hot path" in proc.stdout and "| outcome waiters" in proc.stdout


def test_an_outcome_answer_is_right_only_with_its_own_outcome_after_its_job_finished():
    plan = {"a": ("completed", "a", "l1"), "b": ("failed", "e-b", "l2"), "c": ("cancelled", None, None)}
    sent = {"a": 10.0, "b": 10.0, "c": 10.0}
    right = workflow_scenarios._answered_right
    assert right(["a", 200, "completed", {"w": "a"}, None, 11.0], plan, sent)
    assert right(["b", 200, "failed", None, "e-b", 11.0], plan, sent)
    assert right(["c", 200, "cancelled", None, None, 11.0], plan, sent)
    assert not right(["a", 200, "completed", {"w": "b"}, None, 11.0], plan, sent)  # another job's result
    assert not right(["b", 200, "failed", None, "e-a", 11.0], plan, sent)
    assert not right(["a", 200, "claimed", None, None, 11.0], plan, sent)  # answered unfinished
    assert not right(["c", 200, "cancelled", None, None, 9.0], plan, sent)  # before its job was finished
    assert not right(["c", 503, None, None, None, 11.0], plan, sent)


def _row(kind: str, group: str = "x", **fields) -> dict:
    return {"group": group, "name": kind, "kind": kind, **fields}


def test_medians_and_target_verdicts():
    runs = [{"rows": [_row("cycle_1_complete", jobs_per_s=v, exactly_once=True)]} for v in (500, 900, 800)]
    runs[1]["rows"][0]["exactly_once"] = False
    (row,) = report.combine(runs)
    assert row["jobs_per_s"] == 800 and row["exactly_once"] is False and row["runs"] == 3
    verdicts = report.evaluate([row])
    assert verdicts[0]["met"] is True  # 800 >= 1.5 x 498
    slow = _row("cycle_50_ack", jobs_per_s=7540)
    (verdict,) = report.evaluate([slow])
    assert verdict["met"] is False and verdict["shortfall"] == "50% short"  # 20 x 754 = 15,080


def test_maintenance_verdicts():
    rows = [
        _row("maint_retention", "maint", measured_seconds=2.5, target_seconds=10.0, target="burst gone"),
        _row("maint_due", "maint", measured_seconds=6.0, target_seconds=5.0, target="due pending"),
        _row("maint_due", "maint", measured_seconds=None, target_seconds=5.0, target="never"),
    ]
    met, over, never = report.evaluate(rows)
    assert met["met"] is True and met["target"] == "burst gone within 10 s" and met["measured"] == "2.50 s"
    assert over["met"] is False and over["shortfall"] == "20% over"
    assert never["met"] is False and never["measured"] == "not caught up"


def test_checks_hold_only_if_they_held_in_every_run():
    runs = [{"rows": [_row("maint_due", "maint", all_promoted=v, exactly_once=True)]} for v in (True, False, True)]
    (row,) = report.combine(runs)
    assert row["all_promoted"] is False and row["exactly_once"] is True


def _can_build_a_baseline() -> str | None:
    """Why an A/B run cannot work here (None if it can): it needs this checkout's git repository and uv."""
    if shutil.which("uv") is None:
        return "uv is not on PATH"
    inside = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "HEAD"], capture_output=True)
    return None if inside.returncode == 0 else "not a git checkout"


def test_quick_ab_run_against_this_very_commit(tmp_path):
    """``--baseline HEAD``: HEAD is built in a temporary worktree and both versions serve every A/B scenario;
    each scenario has both versions' rows and ratios, and the worktree is gone afterwards."""
    why_not = _can_build_a_baseline()
    if why_not:
        pytest.skip(why_not)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--quick", "--baseline", "HEAD", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = tmp_path.glob("quick-ab-*.json")
    result = json.loads(path.read_text())
    (run,) = result["runs"]
    assert [v["name"] for v in run["versions"]] == ["baseline", "current"]
    assert run["versions"][0]["python"] != sys.executable  # the baseline served from its own environment
    names = [row["name"] for row in run["rows"] if row.get("version")]
    # Every scenario on A, then on B.
    assert [row["version"] for row in run["rows"] if row.get("version")][:2] == ["baseline", "current"]
    compared = result["compared"]
    assert compared["ceiling"] > 0
    kinds = {e["kind"] for e in compared["scenarios"]}
    assert kinds == {
        "submit_1",
        "submit_100",
        "cycle_1_complete",
        "cycle_5_complete",
        "cycle_50_ack",
        "other_info",
        "other_job",
        "other_list",
        "other_extend",
    }, names
    for entry in compared["scenarios"]:
        for version in ("baseline", "current"):
            assert entry[version]["exactly_once"] is True, entry
            assert entry[version]["rate"] > 0 and entry[version]["vs_http_ceiling"] > 0, entry
            assert entry[version]["store_cpu_us_per_request"] is not None, entry  # each version's own store
        assert entry["x_rate"] > 0, entry
    assert "| scenario | unit | A | B | B/A |" in proc.stdout
    worktree = re.search(r"git worktree add --detach (\S+)", proc.stdout)
    assert worktree, proc.stdout[:2000]
    assert not os.path.exists(worktree.group(1))
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert worktree.group(1) not in listed


def _ab_row(version: str, kind: str, rate: float, cpu_us: float, rps: float | None = None) -> dict:
    return {
        "group": "g",
        "name": kind,
        "kind": kind,
        "version": version,
        "jobs_per_s": rate,
        "requests_per_s": rps or rate,
        "server_cpu_us_per_request": cpu_us,
        "exactly_once": True,
    }


def test_ab_ratios_are_paired_within_each_run():
    runs = []
    for ceiling, base, cur in ((1000, 100, 150), (2000, 200, 220), (1500, 100, 300)):
        runs.append(
            {
                "rows": [
                    {"group": "reference", "name": "c", "kind": "ceiling", "requests_per_s": ceiling},
                    _ab_row("baseline", "cycle_1_complete", base, 400, rps=2 * base),
                    _ab_row("current", "cycle_1_complete", cur, 200, rps=2 * cur),
                ]
            }
        )
    runs[1]["rows"][2]["exactly_once"] = False
    compared = report.ab_compare(runs)
    assert compared["ceiling"] == 1500 and compared["ceiling_all"] == [1000, 2000, 1500]
    (entry,) = compared["scenarios"]
    assert entry["x_rate_all"] == [1.5, 1.1, 3.0] and entry["x_rate"] == 1.5  # the median of the paired ratios
    assert entry["x_per_cpu"] == 2.0
    assert entry["baseline"]["rate"] == 100 and entry["current"]["rate"] == 220
    assert entry["current"]["vs_http_ceiling"] == 0.3  # 300/1000, 440/2000, 600/1500 -> median 0.3
    assert entry["baseline"]["exactly_once"] is True and entry["current"]["exactly_once"] is False
    table = report.ab_table(compared, [{"name": "baseline", "label": "old"}, {"name": "current", "label": "new"}])
    assert "A = old; B = new" in table and "1.50, 1.10, 3.00" in table and "yes, NO" in table


def test_key_order_check():
    ordered = ["a0", "b0", "a1", "b1"]  # two keys: n % 2
    good = [{"timeline": [["a0", 0, 5], ["b0", 1, 2], ["a1", 6, 8], ["b1", 3, 4]]}]
    assert scenarios._key_order_held(ordered, 2, good)
    overlapping = [{"timeline": [["a0", 0, 5], ["b0", 1, 2], ["a1", 4, 8], ["b1", 3, 4]]}]  # a1 before a0 reported
    assert not scenarios._key_order_held(ordered, 2, overlapping)
    reordered = [{"timeline": [["a0", 6, 8], ["b0", 1, 2], ["a1", 0, 5], ["b1", 3, 4]]}]  # a1 handed out first
    assert not scenarios._key_order_held(ordered, 2, reordered)


async def test_a_client_spec_longer_than_one_argument_goes_in_a_file():
    """The other routes' request lists (a path per job) are longer than Linux takes in one argument."""
    lists = [[["GET", f"/api/v1/queues/q/jobs/{n:040d}", "", ""] for n in range(2_000)]]
    with harness.reference_app("trivial") as app:
        spec = {"kind": "requests", "host": app.host, "port": app.port, "lists": lists, "requests": 50,
                "seconds": 5, "connections": 2}  # fmt: skip
        assert len(json.dumps(spec)) > harness.ARG_MAX
        (result,), _ = await harness.run_clients(spec)
    assert result["requests"] == 50 and result["errors"] == 0


def test_store_calls_per_job_of_the_worker_paths():
    """benchmarks.storecalls counts the commands the functions run per job on each path, exactly; the worker
    paths include the retention's removal (one read of each finished record)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.storecalls", "--jobs", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = r"^(.+?): 300 jobs.*\n  FCALLs per job ([\d.]+), commands from Lua per job ([\d.]+)"
    per_path = re.findall(line, proc.stdout, re.MULTILINE)
    assert [p[0] for p in per_path] == [label for label, _, _ in storecalls.PATHS.values()]
    fcalls = {name: float(p[1]) for name, p in zip(storecalls.PATHS, per_path, strict=True)}
    # A claim and a complete per job, then the removal; a submit per job; one submit per 100 jobs.
    assert fcalls["cycle1"] >= 2 and fcalls["submit1"] >= 1 and 0.01 <= fcalls["submit100"] < 0.05
    assert all(float(p[2]) > 0 for p in per_path)
