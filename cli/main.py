"""The ``starq`` command line: a thin layer of glue over the server and the worker kit's HTTP client."""

from __future__ import annotations

import json

import asyncclick as click

from starq.server.settings import Settings

from .group import main, run_outside_loop


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="STARQ_HOST", help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, envvar="STARQ_PORT", help="Port (0 = any free).")
@click.option(
    "--redis-url",
    default=None,
    envvar="STARQ_REDIS_URL",
    help="Redis/Valkey URL. Without it an embedded Valkey runs with its data in --data-dir.",
)
@click.option(
    "--redis-cluster/--no-redis-cluster",
    default=None,
    envvar="STARQ_REDIS_CLUSTER",
    help="Read a redis://host:port,host:port URL as a Redis Cluster (default: off).",
)
@click.option(
    "--data-dir",
    default=".starq-data",
    show_default=True,
    envvar="STARQ_DATA_DIR",
    help="Where the embedded store keeps its AOF.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    envvar="STARQ_WORKERS",
    help="Server processes sharing the port.",
)
@click.option(
    "--insecure", is_flag=True, envvar="STARQ_INSECURE", help="Allow a non-loopback address in dev mode (no API keys)."
)
@click.option(
    "--read-auth/--no-read-auth",
    default=None,
    envvar="STARQ_READ_AUTH",
    help="Require X-API-Key on GET /api/* too (default: off).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="STARQ_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format",
    default=None,
    envvar="STARQ_LOG_FORMAT",
    type=click.Choice(["auto", "json", "text"]),
    help="Log lines as JSON or text (default: auto, JSON unless stderr is a terminal).",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    envvar="STARQ_ACCESS_LOG",
    help="One log line per HTTP request (default: off).",
)
@click.option(
    "--max-body-bytes",
    type=int,
    default=None,
    envvar="STARQ_MAX_BODY_BYTES",
    help="Largest request body (default: 10 MiB).",
)
@click.option(
    "--max-payload-bytes",
    type=int,
    default=None,
    envvar="STARQ_MAX_PAYLOAD_BYTES",
    help="Largest payload or result of one job (default: 1 MiB).",
)
@click.option(
    "--max-batch",
    type=int,
    default=None,
    envvar="STARQ_MAX_BATCH",
    help="Most jobs per submit or outcomes per ack (default: 1000).",
)
@click.option(
    "--max-block-ms",
    type=int,
    default=None,
    envvar="STARQ_MAX_BLOCK_MS",
    help="Longest long-poll a claim may ask for (default: 60000).",
)
@click.option(
    "--max-claim-count",
    type=int,
    default=None,
    envvar="STARQ_MAX_CLAIM_COUNT",
    help="Most jobs one claim hands out (default: 100).",
)
@click.option(
    "--max-list-count",
    type=int,
    default=None,
    envvar="STARQ_MAX_LIST_COUNT",
    help="Largest page of a job listing (default: 500).",
)
@click.option(
    "--max-queues",
    type=int,
    default=None,
    envvar="STARQ_MAX_QUEUES",
    help="Most queues the store may hold (default: 10000).",
)
@click.option(
    "--redis-max-connections",
    type=int,
    default=None,
    envvar="STARQ_REDIS_MAX_CONNECTIONS",
    help="Store connections per server process (default: 16).",
)
@click.option(
    "--shutdown-grace",
    type=float,
    default=None,
    envvar="STARQ_SHUTDOWN_GRACE",
    help="Seconds a graceful shutdown waits for requests in flight (default: 10).",
)
@click.option(
    "--max-header-bytes",
    type=int,
    default=None,
    envvar="STARQ_MAX_HEADER_BYTES",
    help="Largest request line plus headers (default: 16384).",
)
@click.option(
    "--max-connections",
    type=int,
    default=None,
    envvar="STARQ_MAX_CONNECTIONS",
    help="Open connections per server process (default: 10000).",
)
@click.option(
    "--keep-alive-timeout",
    type=float,
    default=None,
    envvar="STARQ_KEEP_ALIVE_TIMEOUT",
    help="Seconds an idle connection is kept open (default: 75).",
)
@click.option(
    "--body-timeout",
    type=float,
    default=None,
    envvar="STARQ_BODY_TIMEOUT",
    help="Seconds a request body may take to arrive (default: 60).",
)
@click.option(
    "--durable/--no-durable",
    default=None,
    envvar="STARQ_DURABLE",
    help="Answer a write only once the store has it on disk (default: off; docs/durability.md).",
)
@click.option(
    "--http-server",
    default=None,
    envvar="STARQ_HTTP_SERVER",
    type=click.Choice(["starq", "hypercorn"]),
    help="Who speaks HTTP/1.1: Starq's own serving path or Hypercorn's (default: starq).",
)
@click.option("--check-config", is_flag=True, help="Validate the settings, print them (keys hidden) as JSON and exit.")
def serve(check_config: bool, **options) -> None:
    """Run the Starq server (API keys come from STARQ_API_KEYS, comma-separated)."""
    try:
        settings = Settings.from_env(**options)
        settings.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if check_config:
        click.echo(json.dumps(settings.describe(), indent=2))
        return
    from starq.server.serve import StartError, run

    try:
        run(settings)
    except StartError as exc:
        raise click.ClickException(str(exc)) from None


# ``serve`` runs Hypercorn's own Trio loop, so it starts once the CLI's loop has ended.
run_outside_loop(serve)

# The other commands register themselves on ``main`` when imported.
from . import completion, job_commands, queue_commands, submit, watch, worker_command  # noqa: E402,F401
