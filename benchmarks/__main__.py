"""``uv run python -m benchmarks run [--quick] [--repeat N] [--only GROUP,...] [--baseline REV]``,
``uv run python -m benchmarks vs-bullmq [--quick] [--repeat N]``, ``uv run python -m benchmarks report FILE...``
and ``uv run python -m benchmarks soak --minutes N [--proxied]``:
see ``benchmarks/README.md``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import attrs
import trio

from . import baseline, harness, procstat, report, vsbullmq
from .run import AB_GROUPS, run_ab_once, run_once
from .scenarios import Sizes

GROUPS = (
    "http",
    "store",
    "submit",
    "cycle",
    "other",
    "flow",
    "longpoll",
    "events",
    "outcomes",
    "retry",
    "maint",
    "scale",
)
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a store and servers, run the scenarios, print and save the results")
    run.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tiny sizes)")
    run.add_argument("--repeat", type=int, default=1, help="run everything N times and report medians")
    run.add_argument("--only", default="", help=f"comma-separated groups of: {', '.join(GROUPS)}")
    run.add_argument("--waiters", default="", help="long-poll sizes to run instead of the defaults, e.g. 10000")
    run.add_argument(
        "--outcome-waiters", default="", help="outcome-waiter sizes to run instead of the defaults, e.g. 10000"
    )
    run.add_argument("--out", default=str(RESULTS), help="folder for the JSON results")
    run.add_argument(
        "--baseline",
        default="",
        metavar="REV",
        help="A/B: also build the Starq of git revision REV (a temporary worktree) and run the HTTP scenarios "
        f"({', '.join(AB_GROUPS)}) on both versions alternately, with the HTTP ceiling",
    )
    vs = sub.add_parser("vs-bullmq", help="Starq and BullMQ for Python on the same paths, alternately; ratios")
    vs.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tiny sizes)")
    vs.add_argument("--repeat", type=int, default=1, help="run everything N times and report medians")
    vs.add_argument("--out", default=str(RESULTS), help="folder for the JSON results")
    again = sub.add_parser("report", help="medians over the runs of earlier result files, printed as tables")
    again.add_argument("files", nargs="+", help="JSON files written by `run`")
    soak_cmd = sub.add_parser("soak", help="N minutes of mixed load under random faults, with an exactly-once ledger")
    soak_cmd.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (default 30)")
    soak_cmd.add_argument("--proxied", action="store_true",
                          help="reach the store through a TCP proxy that adds latency and cuts links")  # fmt: skip
    soak_cmd.add_argument("--seed", type=int, default=None, help="the faults' random seed (default: random)")
    soak_cmd.add_argument("--out", default=str(RESULTS), help="folder for the JSON results")
    args = parser.parse_args(argv)
    if args.command == "vs-bullmq":
        return _vs_bullmq(args)
    if args.command == "soak":
        from . import soak

        return soak.main(args.minutes, args.proxied, args.seed, args.out)
    if args.command == "report":
        runs = [run for f in args.files for run in json.loads(Path(f).read_text())["runs"]]
        if any(row.get("group") == "vs-bullmq" for run in runs for row in run["rows"]):
            print(vsbullmq.table(vsbullmq.compare(runs)))
            return 0
        if any(run.get("versions") for run in runs):
            print(report.ab_table(report.ab_compare(runs), runs[0]["versions"]))
            return 0
        rows = report.combine(runs)
        verdicts = report.evaluate(rows)
        print(report.table(rows))
        print()
        print(report.verdict_table(verdicts))
        return 0

    only = {g.strip() for g in args.only.split(",") if g.strip()} or None
    if only and only - set(GROUPS):
        parser.error(f"unknown groups: {', '.join(sorted(only - set(GROUPS)))}")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.waiters:
        sizes = attrs.evolve(sizes, waiters=tuple(int(n) for n in args.waiters.split(",")))
    if args.outcome_waiters:
        sizes = attrs.evolve(sizes, outcome_waiters=tuple(int(n) for n in args.outcome_waiters.split(",")))
    if args.baseline:
        if only and only - set(AB_GROUPS):
            parser.error(f"an A/B run measures only {', '.join(AB_GROUPS)}")
        return _ab(args, sizes, only)
    runs = []
    failed = False
    for i in range(args.repeat):
        print(f"== run {i + 1}/{args.repeat} (load {procstat.load_average()})", flush=True)
        run_rows: list[dict[str, Any]] = []  # what a run that fails half-way got done
        try:
            runs.append(trio.run(run_once, sizes, only, print, run_rows))
        except Exception:
            traceback.print_exc()
            runs.append({"rows": run_rows, "error": traceback.format_exc()})
            failed = True
            break
    rows = report.combine(runs)
    verdicts = report.evaluate(rows)
    print()
    print(report.table(rows))
    print()
    print(report.verdict_table(verdicts))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"{'quick' if args.quick else 'full'}-{stamp}-{os.getpid()}.json"
    path.write_text(json.dumps({"quick": args.quick, "runs": runs, "combined": rows, "targets": verdicts}, indent=1))
    print(f"\nresults written to {path}")
    failures = [r for r in rows if r.get("exactly_once") is False]
    for row in failures:
        print(f"EXACTLY-ONCE CHECK FAILED: {row['name']}", file=sys.stderr)
    return 1 if failures or failed else 0


def _ab(args: argparse.Namespace, sizes: Sizes, only: set[str] | None) -> int:
    runs: list[dict[str, Any]] = []
    failed = False
    with baseline.checkout(args.baseline) as base:
        described = baseline.describe_current()
        label = f"this checkout ({described[:10]}{', with uncommitted changes' if ' ' in described else ''})"
        current = attrs.evolve(harness.CURRENT, commit=described, label=label if described else harness.CURRENT.label)
        versions = (base, current)  # A, B
        for i in range(args.repeat):
            print(f"== A/B run {i + 1}/{args.repeat} (load {procstat.load_average()})", flush=True)
            run_rows: list[dict[str, Any]] = []
            try:
                runs.append(trio.run(run_ab_once, sizes, versions, only, print, run_rows))
            except Exception:
                traceback.print_exc()
                runs.append({"rows": run_rows, "versions": [attrs.asdict(v) for v in versions],
                             "error": traceback.format_exc()})  # fmt: skip
                failed = True
                break
    compared = report.ab_compare(runs)
    print()
    print(report.ab_table(compared, runs[0]["versions"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"{'quick-' if args.quick else ''}ab-{stamp}-{os.getpid()}.json"
    path.write_text(json.dumps({"quick": args.quick, "baseline": args.baseline, "runs": runs, "compared": compared},
                               indent=1))  # fmt: skip
    print(f"\nresults written to {path}")
    failures = [r for run in runs for r in run["rows"] if r.get("exactly_once") is False]
    for row in failures:
        print(f"EXACTLY-ONCE CHECK FAILED: {row['name']} [{row.get('version')}]", file=sys.stderr)
    return 1 if failures or failed else 0


def _vs_bullmq(args: argparse.Namespace) -> int:
    sizes = vsbullmq.VsSizes.quick() if args.quick else vsbullmq.VsSizes.full()
    runs: list[dict[str, Any]] = []
    failed = False
    for i in range(args.repeat):
        print(f"== vs-bullmq run {i + 1}/{args.repeat} (load {procstat.load_average()})", flush=True)
        run_rows: list[dict[str, Any]] = []
        try:
            runs.append(trio.run(vsbullmq.run_vs_once, sizes, i, print, run_rows))
        except Exception:
            traceback.print_exc()
            runs.append({"rows": run_rows, "error": traceback.format_exc()})
            failed = True
            break
    compared = vsbullmq.compare(runs)
    print()
    print(vsbullmq.table(compared))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"{'quick-' if args.quick else ''}vs-bullmq-{stamp}-{os.getpid()}.json"
    path.write_text(json.dumps({"quick": args.quick, "runs": runs, "compared": compared}, indent=1))
    print(f"\nresults written to {path}")
    failures = [r for run in runs for r in run["rows"] if r.get("exactly_once") is False]
    for row in failures:
        print(f"EXACTLY-ONCE CHECK FAILED: {row['name']} [{row['system']}]", file=sys.stderr)
    return 1 if failures or failed else 0


if __name__ == "__main__":
    sys.exit(main())
