"""``starq worker module:function -q queue``: run a handler over a queue with the worker kit's ``Worker``."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncclick as click

from .group import api_command, main
from .options import block_ms_option
from .output import Output

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient


def load_handler(spec: str) -> Callable[..., Any]:
    """``package.module:function`` (the function may be a dotted attribute path), imported from the current
    directory first, as ``python -m`` would."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter("expected module:function, e.g. app.tasks:handle", param_hint="HANDLER")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name!r}: {exc}", param_hint="HANDLER") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise click.BadParameter(f"{module_name!r} has no attribute {attr!r}", param_hint="HANDLER") from None
    if not callable(target):
        raise click.BadParameter(f"{spec} is not callable", param_hint="HANDLER")
    return target


@api_command(main)
@click.argument("handler")
@click.option("-q", "--queue", required=True, help="The queue to work on.")
@click.option(
    "-c", "--concurrency", type=click.IntRange(1, 10_000), default=1, show_default=True, help="Jobs run at once."
)
@block_ms_option(default=30_000, help="How long each claim waits for a job (long-poll).")
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds running jobs get to finish after SIGINT/SIGTERM.",
)
@click.option("--name", default=None, help="Worker name shown by the server [default: host-pid].")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
async def worker(
    client: StarqClient,
    out: Output,
    handler: str,
    queue: str,
    concurrency: int,
    block_ms: int,
    grace: float,
    name: str | None,
    log_level: str,
) -> None:
    """Run HANDLER (module:function) on every job of a queue.

    The function gets a Job (job.payload is the submitted object); an async function runs on the event loop, a
    plain one in a thread. Its return value completes the job; raising fails it (starq.worker_kit.Retry and
    Permanent choose retry or dead-letter). SIGINT/SIGTERM stop gracefully (jobs unfinished after --grace are
    given back without counting an attempt); a second one exits at once. A job cancelled while it runs is
    stopped at its next heartbeat and not reported.
    """
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    fn = load_handler(handler)
    from starq.worker_kit import Worker  # here: the other commands, and completion, do without it

    loop = Worker(client, queue, fn, concurrency=concurrency, name=name, block_ms=block_ms, grace=grace)
    graceful = await loop.run_until_signal()
    stats = loop.statistics()
    if out.json_mode:
        out.json(
            {
                "graceful": graceful,
                **{
                    k: getattr(stats, k)
                    for k in ("claimed", "completed", "retried", "dead", "interrupted", "lost", "cancelled")
                },
            }
        )
    if not graceful:
        raise click.exceptions.Exit(1)
