"""Queue commands: health, queues, create, info, update, delete, pause, resume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncclick as click

from starq.worker_kit import QueueInfo, StarqClient

from .group import api_command, main
from .output import Output

COUNTS = ("pending", "scheduled", "claimed", "completed", "failed", "cancelled")


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The queue settings shared by ``create`` and ``update`` (unset ones keep the server's value)."""
    options = [
        click.option("-d", "--description", default=None, help="What the queue is for."),
        click.option(
            "--max-retries",
            type=click.IntRange(0, 1000),
            default=None,
            help="Times a failed job is tried again before it is dead-lettered [server default: 3].",
        ),
        click.option(
            "--claim-timeout",
            type=click.IntRange(1),
            default=None,
            help="Seconds a claim's lease lasts [server default: 600].",
        ),
        click.option(
            "--retry-delay",
            type=click.FloatRange(0),
            default=None,
            help="Base of the retry backoff in seconds; 0 = retry at once [server default: 1].",
        ),
        click.option(
            "--retry-delay-max",
            type=click.FloatRange(0),
            default=None,
            help="Cap of the retry backoff in seconds [server default: 300].",
        ),
        click.option(
            "--retention",
            type=click.IntRange(1),
            default=None,
            help="Seconds finished jobs are kept [server default: 604800, 7 days].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def show_queue(out: Output, info: QueueInfo) -> None:
    if out.json_mode:
        out.json(info.raw)
        return
    out.record(list(info.raw.items()), title=f"queue {info.name}")


@api_command(main)
async def health(client: StarqClient, out: Output) -> None:
    """Check that the server and its store are up."""
    data = await client.health()
    if out.json_mode:
        out.json(data)
    else:
        out.record([(k, out.status(v) if k == "status" else v) for k, v in data.items()])


@api_command(main)
async def queues(client: StarqClient, out: Output) -> None:
    """List all queues with their job counts."""
    found = await client.list_queues()
    if out.json_mode:
        out.json({"queues": [q.raw for q in found]})
    elif not found:
        out.line("No queues")
    else:
        out.table(
            ["name", *COUNTS, "paused"],
            [[q.name, *(getattr(q, c) for c in COUNTS), q.paused] for q in found],
            right=COUNTS,
        )


@api_command(main)
@click.argument("name")
@settings_options
@click.option("--dedupe", is_flag=True, help="Skip a submitted payload equal to one the queue still knows.")
async def create(client: StarqClient, out: Output, name: str, **settings: Any) -> None:
    """Create a queue."""
    show_queue(out, await client.create_queue(name, **settings))


@api_command(main)
@click.argument("name")
async def info(client: StarqClient, out: Output, name: str) -> None:
    """Show a queue's settings and counts."""
    show_queue(out, await client.get_queue(name))


@api_command(main)
@click.argument("name")
@settings_options
@click.option("--dedupe/--no-dedupe", default=None, help="Turn payload dedupe on or off.")
async def update(client: StarqClient, out: Output, name: str, **changes: Any) -> None:
    """Change a queue's settings (only the options given)."""
    if all(v is None for v in changes.values()):
        raise click.UsageError("give at least one setting to change")
    show_queue(out, await client.update_queue(name, **changes))


@api_command(main)
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
async def delete(client: StarqClient, out: Output, name: str, yes: bool) -> None:
    """Delete a queue and every job in it (asks first on a terminal)."""
    if not yes and out.tty and not out.json_mode:
        info_ = await client.get_queue(name)
        jobs = sum(getattr(info_, c) for c in COUNTS)
        if not click.confirm(f"Delete queue {name!r} and its {jobs} job(s)?", default=False):
            raise click.Abort()
    data = await client.delete_queue(name)
    if out.json_mode:
        out.json(data)
    else:
        out.line(f"Deleted queue {name}")


@api_command(main)
@click.argument("name")
async def pause(client: StarqClient, out: Output, name: str) -> None:
    """Pause a queue: it hands out no jobs until resumed."""
    info_ = await client.pause(name)
    out.json(info_.raw) if out.json_mode else out.line(f"Paused queue {name}")


@api_command(main)
@click.argument("name")
async def resume(client: StarqClient, out: Output, name: str) -> None:
    """Resume a paused queue."""
    info_ = await client.resume(name)
    out.json(info_.raw) if out.json_mode else out.line(f"Resumed queue {name}")
