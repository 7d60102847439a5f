"""``starq schedules``: list, show, create, update, pause, resume and delete a queue's schedules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncclick as click

from starq.worker_kit import Schedule
from starq.worker_kit.protocol import JOB_OPTIONS, MAX_UNIQUE_FOR

from .group import api_command, main
from .options import (
    confirm,
    given_job_options,
    job_options,
    json_object,
    need_yes_or_terminal,
    stack,
    yes_option,
)
from .output import Output, compact, pretty

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

COLUMNS = ["name", "when", "paused", "next_run_at", "last_run_at", "payload"]
# What --clear accepts: the job options, as their options are spelled.
CLEARABLE = {name.replace("_", "-"): name for name in JOB_OPTIONS}


@main.group()
def schedules() -> None:
    """A queue's schedules: jobs submitted by a cron expression or every N seconds."""


timing_options = stack(
    click.option(
        "--cron",
        metavar="EXPR",
        help="A cron expression: 5 fields, or 6 with seconds first ('*/2 * * * * *' = every 2 s).",
    ),
    click.option(
        "--every",
        type=click.IntRange(1, MAX_UNIQUE_FOR),
        metavar="SECONDS",
        help="Run every this many seconds (instead of --cron).",
    ),
    click.option("--timezone", metavar="TZ", help="The IANA time zone --cron is read in."),
    click.option("--payload", metavar="JSON", help="The payload of every job (a JSON object)."),
)


def show_schedule(out: Output, schedule: Schedule) -> None:
    out.show(
        schedule.raw,
        title=f"schedule {schedule.name} of queue {schedule.queue}",
        shown=lambda key, value: pretty(value) if key == "payload" else value,
    )


def _definition(params: dict[str, Any]) -> dict[str, Any]:
    """The schedule fields given on the command line (those not given are left out)."""
    if params["cron"] is not None and params["every"] is not None:
        raise click.UsageError("give --cron or --every, not both")
    fields = {name: params.pop(name) for name in ("cron", "every", "timezone")}
    fields["payload"] = json_object(params.pop("payload"), "--payload")
    fields.update(given_job_options(params))
    return {name: value for name, value in fields.items() if value is not None}


@api_command(schedules, "list")
@click.argument("queue")
async def list_schedules(client: StarqClient, out: Output, queue: str) -> None:
    """List a queue's schedules with their next and last run."""
    out.listing(
        "schedules",
        await client.list_schedules(queue),
        COLUMNS,
        lambda s: [s.name, s.when, s.paused, s.next_run_at, s.last_run_at, compact(s.payload)],
        empty="No schedules",
    )


@api_command(schedules, "show")
@click.argument("queue")
@click.argument("name")
async def show(client: StarqClient, out: Output, queue: str, name: str) -> None:
    """Show one schedule: its timing, payload, job options, next and last run."""
    show_schedule(out, await client.get_schedule(queue, name))


@api_command(schedules, "create")
@click.argument("queue")
@click.argument("name")
@timing_options
@click.option("--paused", is_flag=True, help="Create it paused (it submits nothing until resumed).")
@job_options
async def create(client: StarqClient, out: Output, queue: str, name: str, paused: bool, **params: Any) -> None:
    """Create a schedule: --cron EXPR or --every SECONDS (exactly one), with its jobs' payload and options."""
    fields = _definition(params)
    if ("cron" in fields) == ("every" in fields):
        raise click.UsageError("give --cron EXPR or --every SECONDS")
    show_schedule(out, await client.create_schedule(queue, name, paused=paused, **fields))


@api_command(schedules, "update")
@click.argument("queue")
@click.argument("name")
@timing_options
@job_options
@click.option(
    "--clear",
    "cleared",
    multiple=True,
    type=click.Choice(sorted(CLEARABLE)),
    help="Remove this job option from the schedule (repeat for more).",
)
async def update(
    client: StarqClient, out: Output, queue: str, name: str, cleared: tuple[str, ...], **params: Any
) -> None:
    """Change a schedule (only the options given). --cron replaces an interval, --every a cron expression;
    a new timing counts from now."""
    changes: dict[str, Any] = _definition(params)
    for option in cleared:
        field = CLEARABLE[option]
        if field in changes:
            raise click.UsageError(f"--clear {option} contradicts the value given for it")
        changes[field] = None
    if not changes:
        raise click.UsageError("give at least one thing to change")
    show_schedule(out, await client.update_schedule(queue, name, **changes))


@api_command(schedules, "pause")
@click.argument("queue")
@click.argument("name")
async def pause(client: StarqClient, out: Output, queue: str, name: str) -> None:
    """Pause a schedule: it submits nothing until resumed."""
    out.answer((await client.pause_schedule(queue, name)).raw, f"Paused schedule {name} of queue {queue}")


@api_command(schedules, "resume")
@click.argument("queue")
@click.argument("name")
async def resume(client: StarqClient, out: Output, queue: str, name: str) -> None:
    """Resume a paused schedule (its next run counts from now; missed runs are not made up)."""
    schedule = await client.resume_schedule(queue, name)
    out.answer(schedule.raw, f"Resumed schedule {name} of queue {queue}; next run {schedule.next_run_at}")


@api_command(schedules, "delete")
@click.argument("queue")
@click.argument("name")
@yes_option
async def delete(client: StarqClient, out: Output, queue: str, name: str, yes: bool) -> None:
    """Delete a schedule (asks first; without a terminal, needs --yes); the jobs it submitted stay."""
    if need_yes_or_terminal(out, yes=yes, what="schedules delete"):
        found = await client.get_schedule(queue, name)  # a missing one is an error before any question
        confirm(f"Delete schedule {name!r} ({found.when}) of queue {queue!r}? Its jobs stay.")
    out.answer(await client.delete_schedule(queue, name), f"Deleted schedule {name} of queue {queue}")
