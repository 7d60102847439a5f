"""Queue commands: health, queues, create, info, update, delete, pause, resume, purge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncclick as click

from starq.worker_kit import QueueInfo, StarqClient
from starq.worker_kit.protocol import JOB_STATUSES, QUEUE_SETTINGS

from .group import api_command, main
from .options import RateLimit, confirm, describe_rate_limit, need_yes_or_terminal
from .output import Output

COUNTS = JOB_STATUSES
# What purge may remove: every status but claimed (a claimed job is cancelled instead).
PURGEABLE = tuple(s for s in JOB_STATUSES if s != "claimed")
EVENTS_MAX = next(s for s in QUEUE_SETTINGS if s.name == "events_max")


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
        click.option(
            "--concurrency",
            type=click.IntRange(0, 1_000_000),
            default=None,
            help="Most jobs claimed at once across the queue; 0 = no limit [server default: 0].",
        ),
        click.option(
            "--key-concurrency",
            type=click.IntRange(0, 1_000_000),
            default=None,
            help="Most claimed jobs at once per job key; 1 runs a key's jobs one at a time, in order; "
            "0 = no limit [server default: 0].",
        ),
        click.option(
            "--rate-limit",
            type=RateLimit(),
            default=None,
            help="At most MAX jobs handed out per PER_MS milliseconds, e.g. 10/1000 [server default: none].",
        ),
        click.option(
            "--events-max",
            type=click.IntRange(int(EVENTS_MAX.minimum or 0), int(EVENTS_MAX.maximum or 0)),
            default=None,
            help=f"About how many events the queue's log keeps (the oldest go first) "
            f"[server default: {EVENTS_MAX.default}].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def show_queue(out: Output, info: QueueInfo) -> None:
    if out.json_mode:
        out.json(info.raw)
        return
    out.record([(key, _shown(key, value)) for key, value in info.raw.items()], title=f"queue {info.name}")


def _shown(key: str, value: Any) -> Any:
    """A setting as people read it: the rate limit in words, and what 0 means for the concurrency limits."""
    if key == "rate_limit":
        return describe_rate_limit(value)
    if key in ("concurrency", "key_concurrency") and value == 0:
        return "0 (no limit)"
    return value


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
@click.option("--events", is_flag=True, help="Keep a log of every job transition, to follow with `starq events`.")
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
@click.option("--events/--no-events", default=None, help="Turn the queue's event log on or off.")
@click.option("--no-rate-limit", is_flag=True, help="Remove the queue's rate limit.")
async def update(client: StarqClient, out: Output, name: str, no_rate_limit: bool, **changes: Any) -> None:
    """Change a queue's settings (only the options given)."""
    if no_rate_limit and changes["rate_limit"] is not None:
        raise click.UsageError("give --rate-limit or --no-rate-limit, not both")
    if all(v is None for v in changes.values()) and not no_rate_limit:
        raise click.UsageError("give at least one setting to change")
    show_queue(out, await client.update_queue(name, clear_rate_limit=no_rate_limit, **changes))


@api_command(main)
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (needed when stdin is not a terminal).")
async def delete(client: StarqClient, out: Output, name: str, yes: bool) -> None:
    """Delete a queue and every job in it (asks first; without a terminal, needs --yes)."""
    if need_yes_or_terminal(out, yes=yes, what="delete"):
        info_ = await client.get_queue(name)  # a missing queue is an error before any question
        jobs = sum(getattr(info_, c) for c in COUNTS)
        confirm(f"Delete queue {name!r} and its {jobs} job(s)?")
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


@api_command(main)
@click.argument("name")
@click.option("-s", "--status", type=click.Choice(PURGEABLE), required=True, help="Remove every job of this status.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (needed when stdin is not a terminal).")
async def purge(client: StarqClient, out: Output, name: str, status: str, yes: bool) -> None:
    """Remove every job of one status from a queue (asks first; without a terminal, needs --yes)."""
    if need_yes_or_terminal(out, yes=yes, what="purge"):
        count = getattr(await client.get_queue(name), status)
        confirm(f"Remove the {count} {status} job(s) of queue {name!r}?")
    purged = await client.purge(name, status)
    if out.json_mode:
        out.json({"status": "ok", "queue": name, "purged": purged})
    else:
        out.line(f"Purged {purged} {status} job(s) from {name}")
