"""Workflow commands: wait (for a job's outcome) and batch (show one).

``wait`` takes QUEUE and ID like every job command (``job``, ``cancel``, ...): the API reaches a job through its
queue, and a bare id would need a lookup across every queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncclick as click

from starq.worker_kit import Job

from .group import api_command, main
from .options import job_arguments
from .output import Output, compact

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

# The exit status of ``wait`` for each outcome. 1 stays what it is for every command (an error: the server refused,
# or could not be reached), so that a script can tell a failed job from a failed wait.
WAIT_EXIT_STATUS = {"completed": 0, "failed": 3, "cancelled": 4}
STILL_RUNNING = 124  # --timeout passed with the job unfinished (as timeout(1) exits)


@api_command(main)
@job_arguments
@click.option(
    "--timeout",
    "wait_for",
    type=click.FloatRange(0),
    default=None,
    metavar="SECONDS",
    help="Give up after this long (default: wait as long as it takes). Not the global --timeout, which comes "
    "before the command.",
)
async def wait(client: StarqClient, out: Output, queue: str, job_id: str, wait_for: float | None) -> None:
    """Wait for a job to finish; the exit status tells how it ended.

    \b
    0    completed
    3    failed (dead-lettered)
    4    cancelled
    124  not finished when --timeout passed
    1    an error (no such job, server unreachable, ...)
    """
    job = await client.wait(queue, job_id, timeout=wait_for)
    if out.json_mode:
        out.json(job.raw)
    else:
        out.line(_outcome(job, wait_for))
    status = WAIT_EXIT_STATUS.get(job.status, STILL_RUNNING) if job.finished else STILL_RUNNING
    if status:
        raise click.exceptions.Exit(status)


def _outcome(job: Job, waited: float | None) -> str:
    if job.status == "completed":
        return f"Job {job.id} completed: {compact(job.result, 200)}"
    if job.status == "failed":
        return f"Job {job.id} failed: {(job.error.splitlines() or [''])[0]}"
    if job.status == "cancelled":
        reason = (job.error.splitlines() or [""])[0]
        return f"Job {job.id} cancelled" + (f": {reason}" if reason else "")
    return f"Job {job.id} is still {job.status}" + (f" after {waited:g} s" if waited is not None else "")


@api_command(main)
@click.argument("queue")
@click.argument("batch_id")
async def batch(client: StarqClient, out: Output, queue: str, batch_id: str) -> None:
    """Show a batch: how many of its jobs finished which way, and its callback job."""
    found = await client.get_batch(queue, batch_id)
    out.show(found.raw, title=f"batch {found.id} of queue {queue}")
