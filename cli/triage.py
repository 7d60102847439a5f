"""Commands for when something went wrong: ``workers`` (who is working on a queue) and ``bulk`` (one action on
many jobs at once)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncclick as click

from starq.worker_kit import StarqError
from starq.worker_kit.protocol import BULK_ACTIONS, MAX_BULK_IDS

from .group import api_command, main
from .options import confirm, need_yes_or_terminal
from .output import Output

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

WORKER_COLUMNS = ["name", "last_seen", "ago", "jobs_in_hand"]
BULK_COLUMNS = ["job_id", "ok", "status", "detail"]


@api_command(main)
@click.argument("queue")
async def workers(client: StarqClient, out: Output, queue: str) -> None:
    """List the workers that have claimed from a queue: name, when last seen, how many jobs each holds."""
    stats = await client.stats(queue)
    found: list[dict[str, Any]] = stats["workers"]  # most recently seen first
    if out.json_mode:
        out.json({"queue": queue, "now": stats["now"], "workers": found})
    elif not found:
        out.line(f"No workers seen on {queue}")
    else:
        rows = [[w["name"], w["last_seen"], ago(stats["now"], w["last_seen"]), w["jobs_in_hand"]] for w in found]
        out.table(WORKER_COLUMNS, rows, right=("ago", "jobs_in_hand"))


def ago(now: str, then: str) -> str:
    """How long before the server's ``now`` a time was, as people read it (``4 s``, ``12 min``, ``3 h``, ``2 d``).
    Both times come from the server, so the machine's clock plays no part."""
    seconds = max(0.0, (_parse(now) - _parse(then)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@api_command(main)
@click.argument("queue")
@click.argument("ids", nargs=-1, required=True, metavar="ID... | -")
@click.option(
    "-a", "--action", type=click.Choice(BULK_ACTIONS), required=True, help="What to do to each job ('delete' "
    "removes finished jobs for good; 'promote' makes scheduled jobs pending now)."
)  # fmt: skip
@click.option(
    "-y", "--yes", is_flag=True, help="Do not ask before --action delete (needed when stdin is not a terminal)."
)
async def bulk(client: StarqClient, out: Output, queue: str, ids: tuple[str, ...], action: str, yes: bool) -> None:
    """Retry, cancel, delete or promote many jobs, given as arguments or one a line on stdin ('-').

    Each job stands alone: one that cannot be done (not found, not in a status the action applies to) is reported
    on its line and the others go on. The exit status is 1 when any was refused.
    """
    wanted = _read_ids() if ids == ("-",) else list(ids)
    if not wanted:
        raise click.UsageError("no job ids given (stdin was empty)")
    if action == "delete" and need_yes_or_terminal(out, yes=yes, what="bulk --action delete"):
        confirm(f"Delete {len(wanted)} job(s) of queue {queue!r} for good? (only finished ones are removed)")
    results: list[dict[str, Any]] = []
    try:
        for start in range(0, len(wanted), MAX_BULK_IDS):  # the server takes so many ids per request
            results += (await client.bulk(queue, action, wanted[start : start + MAX_BULK_IDS])).results
    except StarqError:
        if results:  # a later request was refused as a whole: what the earlier ones did comes before the error
            _show(out, action, results)
        raise
    _show(out, action, results)
    if any(not item["ok"] for item in results):
        raise click.exceptions.Exit(1)


def _show(out: Output, action: str, results: list[dict[str, Any]]) -> None:
    done = sum(1 for item in results if item["ok"])
    if out.json_mode:
        out.json({"results": results, "ok": done, "errors": len(results) - done})
        return
    out.table(BULK_COLUMNS, [_row(out, item) for item in results])
    out.note(f"{action}: {done} done, {len(results) - done} refused")


def _read_ids() -> list[str]:
    return [line.strip() for line in sys.stdin if line.strip()]


def _row(out: Output, item: dict[str, Any]) -> list[Any]:
    if item["ok"]:
        return [item["job_id"], True, out.status(item["status"]), ""]
    return [item["job_id"], False, item["error"], item["detail"]]
