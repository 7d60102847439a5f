"""``starq events QUEUE``: follow a queue's event log until Ctrl-C (or, with ``--no-follow``, print what it holds
and stop).

One line per event: aligned and coloured on a terminal, tab-separated under a header row when piped, one JSON
object per line with ``--json``. The worker kit's ``EventStream`` reconnects by itself and resumes after the last
event printed, so a server restart loses no event; a ``dropped`` notice (events the log's cap removed before they
were read) goes to stderr, or, with ``--json``, into the output as a line of its own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import asyncclick as click
import trio
from rich.markup import escape

from starq.worker_kit import Event

from .group import api_command, main, quit_on_sigint
from .output import Output, compact

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

COLUMNS = ["id", "at", "event", "job_id", "status", "detail"]
# --no-follow stops at the first pause this long: the server sends what the log holds at once, then live events.
QUIET_SECONDS = 1.0


@api_command(main)
@click.argument("queue")
@click.option(
    "--since",
    type=click.IntRange(0),
    default=None,
    metavar="ID",
    help="Start after event ID (0: everything the log still holds); default: the events from now on.",
)
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help=f"Go on until Ctrl-C, or stop at the first {QUIET_SECONDS:g} s without an event (with --since: print "
    "what the log holds after ID).",
)
async def events(client: StarqClient, out: Output, queue: str, since: int | None, follow: bool) -> None:
    """Follow a queue's events (submitted, claimed, completed, failed, ...) as they happen, until Ctrl-C.

    A dropped connection is resumed after the last event printed. Events the log's cap removed before they were
    read are announced (on stderr, or as a "dropped" line with --json).
    """
    info = await client.get_queue(queue)  # an unknown queue is one line and exit 1, as for any command
    if not info.events:
        out.note(f"Queue {queue} keeps no event log: nothing comes until `starq update {queue} --events`")
    if not out.json_mode and not out.tty:
        click.echo("\t".join(COLUMNS))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(quit_on_sigint, nursery.cancel_scope)
        async with client.events(queue, since=since) as stream:
            while True:
                with trio.move_on_after(math.inf if follow else QUIET_SECONDS) as quiet:
                    try:
                        event = await anext(stream)
                    except StopAsyncIteration:
                        break
                if quiet.cancelled_caught:
                    break
                show(out, event)
        nursery.cancel_scope.cancel()


def show(out: Output, event: Event) -> None:
    if out.json_mode:
        out.json({"id": event.id, "event": event.kind, "data": event.data}, indent=None)
    elif event.kind == "dropped":
        out.note(f"Dropped: {event.data.get('detail', '')}")
    elif out.tty:
        row = _row(event)
        out.console.print(
            f"{row[0]:>6}  {row[1]}  [bold]{escape(event.kind):<9}[/]  {row[3]}  {out.status(row[4])}  "
            f"{escape(row[5])}",
            highlight=False,
        )
    else:
        click.echo("\t".join(_row(event)))


def _row(event: Event) -> list[str]:
    data = event.data
    return [
        "" if event.id is None else str(event.id),
        str(data.get("at", "")),
        event.kind,
        str(data.get("job_id", "")),
        str(data.get("status", "")),
        detail(data),
    ]


def detail(data: dict[str, Any]) -> str:
    """What an event says besides its job and status: its error (first line), progress, worker, retries."""
    parts = []
    if data.get("error"):
        parts.append((str(data["error"]).splitlines() or [""])[0])
    if "progress" in data:
        parts.append("progress " + compact(data["progress"]))
    if data.get("worker"):
        parts.append(f"worker {data['worker']}")
    if "retries" in data:
        parts.append(f"retries {data['retries']}")
    return "; ".join(parts)
