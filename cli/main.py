"""The ``starq`` command line: a thin layer of glue over the server and the worker kit's HTTP client."""

from __future__ import annotations

import asyncclick as click

from starq.server.settings import Settings

from .group import main, run_outside_loop


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="STARQ_HOST", help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, envvar="STARQ_PORT", help="Port (0 = any free).")
@click.option("--redis-url", default=None, envvar="STARQ_REDIS_URL",
              help="Redis/Valkey URL. Without it an embedded Valkey runs with its data in --data-dir.")
@click.option("--data-dir", default=".starq-data", show_default=True, envvar="STARQ_DATA_DIR",
              help="Where the embedded store keeps its AOF.")
@click.option("--workers", default=1, show_default=True, type=int, envvar="STARQ_WORKERS",
              help="Server processes sharing the port.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address in dev mode (no API keys).")
@click.option("--log-level", default="info", show_default=True, envvar="STARQ_LOG_LEVEL",
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(host: str, port: int, redis_url: str | None, data_dir: str, workers: int, insecure: bool,
          log_level: str) -> None:
    """Run the Starq server (API keys come from STARQ_API_KEYS, comma-separated)."""
    from starq.server.serve import run

    settings = Settings.from_env(host=host, port=port, redis_url=redis_url, data_dir=data_dir, workers=workers,
                                 insecure=insecure, log_level=log_level)
    try:
        settings.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    run(settings)


# ``serve`` runs Hypercorn's own Trio loop, so it starts once the CLI's loop has ended.
run_outside_loop(serve)

# The other commands register themselves on ``main`` when imported.
from . import job_commands, queue_commands, submit, watch, worker_command  # noqa: E402,F401
