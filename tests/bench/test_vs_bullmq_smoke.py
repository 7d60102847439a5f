"""``python -m benchmarks vs-bullmq --quick``: Starq and BullMQ for Python, each on its own Valkey, on the same four
paths; every path must have both systems' rows, with store CPU per job, and every exactly-once check must pass.
Speed is reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import vsbullmq

ROOT = Path(__file__).resolve().parents[2]


def test_quick_vs_bullmq_run_measures_both_systems_on_every_path(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "vs-bullmq", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = tmp_path.glob("quick-vs-bullmq-*.json")
    result = json.loads(path.read_text())
    (run,) = result["runs"]
    rows = run["rows"]
    assert {(row["path"], row["system"]) for row in rows} == {
        (p.kind, system) for p in vsbullmq.PATHS for system in ("starq", "bullmq")
    }
    for row in rows:
        assert row["exactly_once"] is True, row
        assert row["jobs"] > 0 and row["jobs_per_s"] > 0, row
        assert row["store_cpu_us_per_job"] is not None, row
        assert row["load_before"], row
    # Starq's worker phases ran until retention had removed their finished jobs, as BullMQ removes them at once.
    workers = [row for row in rows if row["system"] == "starq" and row["path"].startswith("worker")]
    assert len(workers) == 2 and all(row["finished_removed_after_s"] is not None for row in workers), workers
    assert [e["path"] for e in result["compared"]] == [p.kind for p in vsbullmq.PATHS]
    assert all(e["x_rate"] > 0 for e in result["compared"])
    assert "| path | BullMQ jobs/s | Starq jobs/s |" in proc.stdout
    assert run["machine"]["bullmq"]


def _pair(path: str, starq: tuple[float, float], bullmq: tuple[float, float]) -> list[dict]:
    return [
        {"path": path, "system": system, "jobs_per_s": rate, "store_cpu_us_per_job": cpu, "exactly_once": True}
        for system, (rate, cpu) in (("starq", starq), ("bullmq", bullmq))
    ]


def test_ratios_are_paired_within_each_run():
    runs = [
        {"rows": _pair("add_1", (3000, 100), (4000, 50))},
        {"rows": _pair("add_1", (1000, 90), (500, 60))},
        {"rows": _pair("add_1", (2000, 120), (2000, 40))},
    ]
    runs[2]["rows"][1]["exactly_once"] = False
    (entry,) = vsbullmq.compare(runs)
    assert entry["x_rate_all"] == [0.75, 2.0, 1.0] and entry["x_rate"] == 1.0
    assert entry["x_store_cpu_all"] == [2.0, 1.5, 3.0] and entry["x_store_cpu"] == 2.0
    assert entry["starq"]["jobs_per_s"] == 2000 and entry["bullmq"]["store_cpu_us_per_job"] == 50
    assert entry["starq"]["exactly_once"] is True and entry["bullmq"]["exactly_once"] is False
    assert "| NO |" in vsbullmq.table([entry])
