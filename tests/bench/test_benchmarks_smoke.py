"""The benchmark suite's smoke run (``python -m benchmarks run --quick``): it must keep working, every scenario
must produce its row, and every exactly-once check must pass. Speed is reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# benchmarks/ is a folder of the repository, not an installed package (it runs as ``python -m benchmarks`` from
# the repository's root, which pytest's ``pythonpath`` puts on sys.path after tests/).
from benchmarks import report

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
        "retry_0",
        "retry_1",
    } <= kinds
    assert any(k.startswith("longpoll_") for k in kinds)
    assert {row["name"] for row in rows if row["group"] == "scale"} == {"--workers 1", "--workers 2"}
    for row in rows:
        if "exactly_once" in row:
            assert row["exactly_once"] is True, row
        assert row.get("errors", 0) == 0, row
    longpoll = next(row for row in rows if row["group"] == "longpoll")
    assert longpoll["woken"] > 0 and longpoll["release_seconds"] is not None
    targets = {t["target"] for t in result["targets"]}
    assert any("stock hypercorn-trio" in t for t in targets) and any("--workers 2" in t for t in targets)
    assert "| scenario |" in proc.stdout and "| target |" in proc.stdout
    assert result["runs"][0]["rows"][0]["load_before"]  # the machine's load is recorded with every row


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
