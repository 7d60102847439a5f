"""``starq watch``: queue counts and rates, refreshed until Ctrl-C.

On a terminal it redraws one table in place; piped, it prints a tab-separated block per refresh; with ``--json``
one JSON object per line. Rates are the change of the completed and failed counts between two refreshes.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncclick as click
import trio
from rich.live import Live
from rich.table import Table

from starq.worker_kit import QueueInfo, ServerUnreachable, StoreUnavailable
from starq.worker_kit.protocol import JOB_STATUSES

from .group import api_command, main, quit_on_sigint
from .output import Output

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

COUNTS = JOB_STATUSES
COLUMNS = ["queue", *COUNTS, "done/s", "failed/s", "workers", "paused"]


class Rates:
    """Remembers the last counts of each queue to turn them into per-second rates."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int, int]] = {}

    def update(self, info: QueueInfo, now: float) -> tuple[float, float]:
        before = self._last.get(info.name)
        self._last[info.name] = (now, info.completed, info.failed)
        if before is None or now <= before[0]:
            return 0.0, 0.0
        span = now - before[0]
        # Counts also fall when old records expire, so a negative change counts as none.
        return max(info.completed - before[1], 0) / span, max(info.failed - before[2], 0) / span


def rows(queues: list[QueueInfo], rates: Rates, now: float) -> list[dict[str, Any]]:
    out = []
    for q in queues:
        done, failed = rates.update(q, now)
        out.append(
            {
                "queue": q.name,
                **{c: getattr(q, c) for c in COUNTS},
                "done/s": round(done, 1),
                "failed/s": round(failed, 1),
                "workers": q.workers,
                "paused": q.paused,
            }
        )
    return out


def render(data: list[dict[str, Any]], problem: str) -> Table:
    stamp = datetime.now().strftime("%H:%M:%S")
    title = f"starq watch · {stamp}" + (f" · [red]{problem}[/]" if problem else "") + " · Ctrl-C to quit"
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "queue" else "right")
    for row in data:
        table.add_row(*(("yes" if v else "") if isinstance(v, bool) else str(v) for v in row.values()))
    return table


@api_command(main)
@click.argument("queue", required=False)
@click.option(
    "-i", "--interval", type=click.FloatRange(0.1), default=1.0, show_default=True, help="Seconds between refreshes."
)
@click.option(
    "-n", "--iterations", type=click.IntRange(0), default=0, help="Stop after this many refreshes (0 = until Ctrl-C)."
)
async def watch(client: StarqClient, out: Output, queue: str | None, interval: float, iterations: int) -> None:
    """Live view of queue counts and rates (all queues, or one)."""
    live = Live(render([], ""), console=out.console, auto_refresh=False) if out.tty and not out.json_mode else None
    with live or nullcontext():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(quit_on_sigint, nursery.cancel_scope)
            await _refresh(client, out, live, queue, interval, iterations)
            nursery.cancel_scope.cancel()


async def _refresh(
    client: StarqClient, out: Output, live: Live | None, queue: str | None, interval: float, iterations: int
) -> None:
    rates = Rates()
    count = 0
    while iterations == 0 or count < iterations:
        if count:
            await trio.sleep(interval)
        problem = ""
        data: list[dict[str, Any]] = []
        try:
            found = [await client.get_queue(queue)] if queue else await client.list_queues()
            data = rows(found, rates, time.monotonic())
        except (ServerUnreachable, StoreUnavailable) as exc:
            problem = exc.detail  # keep watching: the server may come back
        count += 1
        _show(out, live, data, problem)


def _show(out: Output, live: Live | None, data: list[dict[str, Any]], problem: str) -> None:
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if out.json_mode:
        out.json({"at": at, "queues": data, "error": problem}, indent=None)
    elif live is not None:
        live.update(render(data, problem), refresh=True)
    elif problem:
        out.error(problem)
    else:
        out.table(COLUMNS, [list(row.values()) for row in data])
        out.line("")
