"""The ``starq`` command line: a thin layer of glue over the server and the worker kit's HTTP client."""

from __future__ import annotations

import json
from typing import Any

import asyncclick as click
import attrs

from starq.server.settings import Settings, env_var, flag_of, shown_default

from .group import main, run_outside_loop


def settings_options(command: Any) -> Any:
    """A flag of ``serve`` for every setting that has one, from its declaration in ``Settings`` (the flag's
    value wins over the environment variable, which wins over the default)."""
    for field in reversed(attrs.fields(Settings)):
        meta = field.metadata
        if not meta["flag"]:
            continue
        flag = flag_of(field.name)
        help_text = f"{meta['help']}  [default: {shown_default(field)}; env {env_var(field.name)}]"
        if isinstance(field.default, bool):
            option = click.option(f"{flag}/--no-{flag[2:]}", field.name, default=None, help=help_text)
        else:
            kind = click.Choice(meta["choices"]) if meta["choices"] else type(field.default)
            option = click.option(flag, field.name, type=kind, default=None, help=help_text)
        command = option(command)
    return command


@main.command()
@settings_options
@click.option("--check-config", is_flag=True, help="Validate the settings, print them (keys hidden) as JSON and exit.")
def serve(check_config: bool, **options: Any) -> None:
    """Run the Starq server (API keys come from STARQ_API_KEYS, comma-separated)."""
    try:
        settings = Settings.from_env(**options)
        settings.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if check_config:
        click.echo(json.dumps(settings.describe(), indent=2))
        return
    try:
        from starq.server.serve import StartError, run
    except ModuleNotFoundError as exc:
        if (exc.name or "starq").startswith("starq"):
            raise  # one of Starq's own modules is missing: a broken install, not a client-only one
        # A client-only install (`pip install starq`): the server's dependencies are an extra.
        raise click.ClickException(
            f"starq serve needs the server's dependencies (no module {exc.name!r}): pip install 'starq[server]'"
        ) from None

    try:
        run(settings)
    except StartError as exc:
        raise click.ClickException(str(exc)) from None


# ``serve`` runs Hypercorn's own Trio loop, so it starts once the CLI's loop has ended.
run_outside_loop(serve)

# The other commands register themselves on ``main`` when imported.
from . import (  # noqa: E402,F401
    completion,
    events,
    job_commands,
    queue_commands,
    schedule_commands,
    submit,
    triage,
    watch,
    worker_command,
    workflow_commands,
)
