"""Options and checks shared by several commands: a job's options (``submit``, ``schedules``), a queue's
settings (``create``, ``update``), rate limits, ISO times, JSON objects, and when a destructive command asks
first."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncclick as click

from starq.worker_kit import protocol

from .output import Output

Decorator = Callable[[Any], Any]


def stack(*decorators: Decorator) -> Decorator:
    """One decorator that applies ``decorators`` as if written one above the other in this order (so the options
    show in ``--help`` in this order)."""

    def apply(command: Any) -> Any:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def setting_range(name: str) -> click.ParamType:
    """The range a queue setting may take, as its declaration in the protocol gives it."""
    setting = next(s for s in protocol.QUEUE_SETTINGS if s.name == name)
    if setting.type == "integer":
        return click.IntRange(_whole(setting.minimum), _whole(setting.maximum))
    return click.FloatRange(setting.minimum, setting.maximum)


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


# QUEUE and JOB_ID, the arguments of every command about one job: the API reaches a job through its queue.
job_arguments = stack(click.argument("queue"), click.argument("job_id"))

# ``-y/--yes`` of the commands that ask before destroying data (see ``need_yes_or_terminal``).
yes_option = click.option(
    "-y", "--yes", is_flag=True, help="Do not ask for confirmation (needed when stdin is not a terminal)."
)


def block_ms_option(*, default: int, help: str) -> Decorator:
    """``--block-ms``: how long one claim waits for a job (the server waits at most a minute)."""
    return click.option(
        "--block-ms", type=click.IntRange(0, protocol.MAX_BLOCK_MS), default=default, show_default=True, help=help
    )


def _check_text(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not 0 < len(value) <= protocol.MAX_KEY_LENGTH:
        raise click.BadParameter(f"must be 1 to {protocol.MAX_KEY_LENGTH} characters long")
    return value


def _check_tags(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple[str, ...]:
    if len(value) > protocol.MAX_TAGS:
        raise click.BadParameter(f"at most {protocol.MAX_TAGS} tags, not {len(value)}")
    for tag in value:
        if not 0 < len(tag) <= protocol.MAX_TAG_LENGTH:
            raise click.BadParameter(f"a tag must be 1 to {protocol.MAX_TAG_LENGTH} characters long: {tag!r}")
    return tuple(value)


# ``-p/--priority``, ``--key``, ``--unique-key``, ``--unique-for``, ``--timeout``, ``--max-retries`` and ``--tag``:
# what each job gets. Unset ones are not sent (the server's defaults apply).
job_options = stack(
    click.option(
        "-p",
        "--priority",
        type=click.IntRange(0, protocol.MAX_PRIORITY),
        help="Priority of every job (0-9; higher first).",
    ),
    click.option(
        "--key",
        callback=_check_text,
        help="The jobs' ordering and concurrency group (see the queue's --key-concurrency).",
    ),
    click.option(
        "--unique-key", callback=_check_text, help="Skip a job while an unfinished job of the queue holds this key."
    ),
    click.option(
        "--unique-for",
        type=click.IntRange(1, protocol.MAX_UNIQUE_FOR),
        metavar="SECONDS",
        help="With --unique-key: hold the key this long from submission instead, whatever becomes of the job.",
    ),
    click.option(
        "--timeout",
        "job_timeout",
        type=click.IntRange(1, protocol.MAX_JOB_TIMEOUT),
        metavar="SECONDS",
        help="The longest one attempt may run; it then fails (and is retried as any failure). "
        "Not the global --timeout, which comes before the command.",
    ),
    click.option(
        "--max-retries",
        type=setting_range("max_retries"),
        help="Retries of each job, instead of the queue's max_retries.",
    ),
    click.option(
        "--tag",
        "tags",
        multiple=True,
        callback=_check_tags,
        help=f"A label to list jobs by (jobs --tag); repeat it for more (at most {protocol.MAX_TAGS}).",
    ),
)


def given_job_options(params: dict[str, Any]) -> dict[str, Any]:
    """Takes the job options out of a command's parameters: those given, named as the API names them."""
    given = {
        "priority": params.pop("priority"),
        "key": params.pop("key"),
        "unique_key": params.pop("unique_key"),
        "unique_for": params.pop("unique_for"),
        "timeout": params.pop("job_timeout"),
        "max_retries": params.pop("max_retries"),
        "tags": list(params.pop("tags")) or None,
    }
    return {name: value for name, value in given.items() if value is not None}


def json_object(text: str | None, what: str) -> dict[str, Any] | None:
    """A JSON object given on the command line, or a usage error naming the option."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"must be a JSON object, not {type(value).__name__}", param_hint=what)
    return value


def check_iso_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An ISO 8601 time with a zone (``2026-12-01T08:00:00Z``), checked before anything is sent."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2026-12-01T08:00:00Z") from None
    if at.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone: add one, e.g. Z or +01:00")
    return value


class RateLimit(click.ParamType):
    """``MAX/PER_MS``: at most MAX jobs handed out per window of PER_MS milliseconds (``10/1000``)."""

    name = "MAX/PER_MS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, int]:
        if isinstance(value, dict):
            return value
        most, sep, per = str(value).partition("/")
        try:
            limit = {"max": int(most), "per_ms": int(per)}
        except ValueError:
            limit = {}
        if not sep or not limit or min(limit.values()) < 1:
            self.fail(f"{value!r} is not MAX/PER_MS, e.g. 10/1000 (10 jobs per 1000 ms)", param, ctx)
        return limit


def describe_rate_limit(limit: dict[str, int] | None) -> str:
    return "none" if not limit else f"{limit['max']} per {limit['per_ms']} ms"


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # replaced, or closed
        return False


def need_yes_or_terminal(out: Output, *, yes: bool, what: str) -> bool:
    """The rule of every command that destroys data (``delete``, ``schedules delete``, ``purge``, ``bulk --action
    delete``), as gh has it: with --yes, go on without asking (False); with a terminal on stdin to answer on, the
    command must ask (True, see ``confirm``); without one (a script, a pipe, cron) it does not guess, and refuses
    in one line before anything is sent (exit status 2)."""
    if yes:
        return False
    if not stdin_is_terminal():
        out.error(f"{what} asks for confirmation and stdin is not a terminal: pass --yes to go ahead")
        raise click.exceptions.Exit(2)
    return True


def confirm(question: str) -> None:
    """Asks on stderr (so --json output stays clean); anything but yes aborts (exit status 1)."""
    if not click.confirm(question, default=False, err=True):
        raise click.Abort()
