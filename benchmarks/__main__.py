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
from collections.abc import Callable
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
    runs, failed = _repeat(args.repeat, "run", lambda i, rows: trio.run(run_once, sizes, only, print, rows))
    rows = report.combine(runs)
    verdicts = report.evaluate(rows)
    print()
    print(report.table(rows))
    print()
    print(report.verdict_table(verdicts))
    name = "quick" if args.quick else "full"
    _write(args.out, name, {"quick": args.quick, "runs": runs, "combined": rows, "targets": verdicts})
    return 1 if _exactly_once_failed(rows) or failed else 0


def _ab(args: argparse.Namespace, sizes: Sizes, only: set[str] | None) -> int:
    with baseline.checkout(args.baseline) as base:
        described = baseline.describe_current()
        label = f"this checkout ({described[:10]}{', with uncommitted changes' if ' ' in described else ''})"
        current = attrs.evolve(harness.CURRENT, commit=described, label=label if described else harness.CURRENT.label)
        versions = (base, current)  # A, B
        runs, failed = _repeat(
            args.repeat,
            "A/B run",
            lambda i, rows: trio.run(run_ab_once, sizes, versions, only, print, rows),
            versions=[attrs.asdict(v) for v in versions],
        )
    compared = report.ab_compare(runs)
    print()
    print(report.ab_table(compared, runs[0]["versions"]))
    name = f"{'quick-' if args.quick else ''}ab"
    _write(args.out, name, {"quick": args.quick, "baseline": args.baseline, "runs": runs, "compared": compared})
    return 1 if _exactly_once_failed([r for run in runs for r in run["rows"]], "version") or failed else 0


def _vs_bullmq(args: argparse.Namespace) -> int:
    sizes = vsbullmq.VsSizes.quick() if args.quick else vsbullmq.VsSizes.full()
    runs, failed = _repeat(
        args.repeat, "vs-bullmq run", lambda i, rows: trio.run(vsbullmq.run_vs_once, sizes, i, print, rows)
    )
    compared = vsbullmq.compare(runs)
    print()
    print(vsbullmq.table(compared))
    name = f"{'quick-' if args.quick else ''}vs-bullmq"
    _write(args.out, name, {"quick": args.quick, "runs": runs, "compared": compared})
    return 1 if _exactly_once_failed([r for run in runs for r in run["rows"]], "system") or failed else 0


def _repeat(
    times: int, what: str, once: Callable[[int, list[dict[str, Any]]], dict[str, Any]], **broken: Any
) -> tuple[list[dict[str, Any]], bool]:
    """Runs ``once(i, rows)`` ``times`` times, and whether one failed: the first that raises ends the series, its
    entry then the rows it got done (``once`` fills ``rows`` as it goes), ``broken``'s fields and the traceback."""
    runs = []
    for i in range(times):
        print(f"== {what} {i + 1}/{times} (load {procstat.load_average()})", flush=True)
        rows: list[dict[str, Any]] = []
        try:
            runs.append(once(i, rows))
        except Exception:
            traceback.print_exc()
            runs.append({"rows": rows, **broken, "error": traceback.format_exc()})
            return runs, True
    return runs, False


def _write(folder: str, name: str, results: dict[str, Any]) -> None:
    """Saves the results as ``{name}-{time}-{pid}.json`` in ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"{name}-{stamp}-{os.getpid()}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nresults written to {path}")


def _exactly_once_failed(rows: list[dict[str, Any]], which: str = "") -> bool:
    """Says on stderr which rows failed their exactly-once check (with their ``which`` field, when given)."""
    failures = [r for r in rows if r.get("exactly_once") is False]
    for row in failures:
        print(f"EXACTLY-ONCE CHECK FAILED: {row['name']}" + (f" [{row.get(which)}]" if which else ""), file=sys.stderr)
    return bool(failures)


if __name__ == "__main__":
    sys.exit(main())
