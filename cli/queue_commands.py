"""Queue commands: health, queues, create, info, update, delete, pause, resume, purge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncclick as click

from starq.worker_kit import QueueInfo
from starq.worker_kit.protocol import JOB_STATUSES, QUEUE_DEFAULTS

from .group import api_command, main
from .options import (
    Decorator,
    RateLimit,
    confirm,
    describe_rate_limit,
    need_yes_or_terminal,
    setting_range,
    stack,
    yes_option,
)
from .output import Output

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

COUNTS = JOB_STATUSES
# What purge may remove: every status but claimed (a claimed job is cancelled instead).
PURGEABLE = tuple(s for s in JOB_STATUSES if s != "claimed")


def _setting_option(flag: str, kind: click.ParamType, help: str) -> Decorator:
    """An option for one queue setting; its help ends with the server's default, from the setting's declaration."""
    default = QUEUE_DEFAULTS[flag.removeprefix("--").replace("-", "_")]
    if default is None:
        shown = "none"
    elif isinstance(default, int) and default >= 86400 and default % 86400 == 0:
        shown = f"{default}, {default // 86400} days"  # seconds, as people count them too
    else:
        shown = str(default)
    return click.option(flag, type=kind, help=f"{help} [server default: {shown}].")


# The queue settings shared by ``create`` and ``update`` (unset ones keep the server's value).
settings_options = stack(
    click.option("-d", "--description", help="What the queue is for."),
    _setting_option(
        "--max-retries", setting_range("max_retries"), "Times a failed job is tried again before it is dead-lettered"
    ),
    _setting_option("--claim-timeout", click.IntRange(1), "Seconds a claim's lease lasts"),
    _setting_option("--retry-delay", click.FloatRange(0), "Base of the retry backoff in seconds; 0 = retry at once"),
    _setting_option("--retry-delay-max", click.FloatRange(0), "Cap of the retry backoff in seconds"),
    _setting_option("--retention", click.IntRange(1), "Seconds finished jobs are kept"),
    _setting_option(
        "--concurrency", setting_range("concurrency"), "Most jobs claimed at once across the queue; 0 = no limit"
    ),
    _setting_option(
        "--key-concurrency",
        setting_range("key_concurrency"),
        "Most claimed jobs at once per job key; 1 runs a key's jobs one at a time, in order; 0 = no limit",
    ),
    _setting_option("--rate-limit", RateLimit(), "At most MAX jobs handed out per PER_MS milliseconds, e.g. 10/1000"),
    _setting_option(
        "--events-max", setting_range("events_max"), "About how many events the queue's log keeps (the oldest go first)"
    ),
)


def show_queue(out: Output, info: QueueInfo) -> None:
    out.show(info.raw, title=f"queue {info.name}", shown=_shown)


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
    out.show(await client.health(), shown=lambda key, value: out.status(value) if key == "status" else value)


@api_command(main)
async def queues(client: StarqClient, out: Output) -> None:
    """List all queues with their job counts."""
    out.listing(
        "queues",
        await client.list_queues(),
        ["name", *COUNTS, "paused"],
        lambda q: [q.name, *(getattr(q, c) for c in COUNTS), q.paused],
        empty="No queues",
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
@yes_option
async def delete(client: StarqClient, out: Output, name: str, yes: bool) -> None:
    """Delete a queue and every job in it (asks first; without a terminal, needs --yes)."""
    if need_yes_or_terminal(out, yes=yes, what="delete"):
        info_ = await client.get_queue(name)  # a missing queue is an error before any question
        jobs = sum(getattr(info_, c) for c in COUNTS)
        confirm(f"Delete queue {name!r} and its {jobs} job(s)?")
    out.answer(await client.delete_queue(name), f"Deleted queue {name}")


@api_command(main)
@click.argument("name")
async def pause(client: StarqClient, out: Output, name: str) -> None:
    """Pause a queue: it hands out no jobs until resumed."""
    out.answer((await client.pause(name)).raw, f"Paused queue {name}")


@api_command(main)
@click.argument("name")
async def resume(client: StarqClient, out: Output, name: str) -> None:
    """Resume a paused queue."""
    out.answer((await client.resume(name)).raw, f"Resumed queue {name}")


@api_command(main)
@click.argument("name")
@click.option("-s", "--status", type=click.Choice(PURGEABLE), required=True, help="Remove every job of this status.")
@yes_option
async def purge(client: StarqClient, out: Output, name: str, status: str, yes: bool) -> None:
    """Remove every job of one status from a queue (asks first; without a terminal, needs --yes)."""
    if need_yes_or_terminal(out, yes=yes, what="purge"):
        count = getattr(await client.get_queue(name), status)
        confirm(f"Remove the {count} {status} job(s) of queue {name!r}?")
    purged = await client.purge(name, status)
    out.answer({"status": "ok", "queue": name, "purged": purged}, f"Purged {purged} {status} job(s) from {name}")
