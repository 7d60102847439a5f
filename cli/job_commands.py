"""Job commands: jobs, job, claim, complete, fail, release, retry, cancel, promote."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import asyncclick as click
import trio

from starq.worker_kit import Job, protocol
from starq.worker_kit.protocol import JOB_STATUSES

from .group import api_command, main
from .options import block_ms_option, job_arguments
from .output import Output, compact, pretty

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

CLAIM_LINGER = 0.2
LEASE_ID_HELP = "The lease from the claim (refused if no longer current)."


def json_value(text: str | None, what: str) -> Any:
    """A JSON command-line argument, or a usage error naming it."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from None


def job_rows(out: Output, jobs: list[Job]) -> list[list[Any]]:
    return [[j.id, out.status(j.status), j.retries, j.priority, j.created_at, compact(j.payload)] for j in jobs]


JOB_COLUMNS = ["id", "status", "retries", "priority", "created_at", "payload"]


@api_command(main)
@click.argument("queue")
@click.option("-s", "--status", type=click.Choice(JOB_STATUSES), default=None, help="Only jobs with this status.")
@click.option(
    "-l",
    "--limit",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Most jobs to list (pages are followed until the limit).",
)
@click.option("--cursor", default="", help="Start after this cursor (from a previous listing).")
@click.option("--tag", default="", help="Only jobs with this tag.")
@click.option(
    "--search",
    default="",
    metavar="TEXT",
    help="Only jobs whose id starts with TEXT, or whose payload or error contains it (case-insensitive).",
)
async def jobs(
    client: StarqClient,
    out: Output,
    queue: str,
    status: str | None,
    limit: int,
    cursor: str,
    tag: str,
    search: str,
) -> None:
    """List a queue's jobs, newest first."""
    found: list[Job] = []
    next_cursor, has_more = cursor, True
    while len(found) < limit and has_more:
        page = await client.list_jobs(
            queue, status=status or "", count=min(500, limit - len(found)), cursor=next_cursor, tag=tag, q=search
        )
        found += page.jobs
        next_cursor, has_more = page.cursor, page.has_more and bool(page.cursor)
    if out.json_mode:
        out.json({"jobs": [j.raw for j in found], "cursor": next_cursor if has_more else "", "has_more": has_more})
        return
    if not found:
        out.line("No jobs")
        return
    out.table(JOB_COLUMNS, job_rows(out, found), right=("retries", "priority"))
    if has_more:
        out.note(f"... more available: --cursor {next_cursor}")


@api_command(main)
@job_arguments
async def job(client: StarqClient, out: Output, queue: str, job_id: str) -> None:
    """Show one job: its payload, result or error, progress, batch, the jobs it depends on and the jobs waiting
    for it (dependents), and its history."""
    found = await client.get_job(queue, job_id)
    # The history is a table of its own, below.
    out.show(found.raw, title=f"job {found.id}", shown=functools.partial(_job_field, out), leave_out=("history",))
    history = found.raw.get("history") or []
    if history and not out.json_mode:
        out.line("")
        out.table(HISTORY_COLUMNS, [history_row(out, event) for event in history], title="history")


def _job_field(out: Output, key: str, value: Any) -> Any:
    if key in ("payload", "result"):
        return pretty(value)
    if key == "status":
        return out.status(value)
    if key in ("depends_on", "dependents") and isinstance(value, list):
        return " ".join(str(v) for v in value)  # ids, to paste into `starq job`
    return value


# A job's history as a table: one row per event, oldest first (``--json`` keeps the server's objects).
HISTORY_COLUMNS = ["at", "event", "worker", "status", "error"]


def history_row(out: Output, event: dict[str, Any]) -> list[Any]:
    status = event.get("status")
    return [
        event.get("at"),
        event.get("event"),
        event.get("worker") or "",
        out.status(status) if status else "",
        first_line(event.get("error") or ""),
    ]


def first_line(text: str) -> str:
    """The first line of an error (a traceback's is usually the message), marked when more follows; the whole
    text is in the job's ``error`` (the last one) and in ``--json``."""
    lines = text.strip().splitlines()
    if not lines:
        return ""
    return lines[0] + (" …" if len(lines) > 1 else "")


@api_command(main)
@click.argument("queue")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(1, protocol.MAX_CLAIM_COUNT),
    default=1,
    show_default=True,
    help="Most jobs to claim.",
)
@block_ms_option(default=0, help="Wait this long for a job when none is ready.")
@click.option("--worker", default="cli", show_default=True, help="Worker name the server records.")
async def claim(client: StarqClient, out: Output, queue: str, count: int, block_ms: int, worker: str) -> None:
    """Claim jobs (prints each job's lease_id, to quote when completing or failing it)."""
    claimed = await client.claim(queue, count=count, block_ms=block_ms, worker=worker)
    if claimed:
        # Keep the connection open a moment before the process closes it: the server's delivery guard can
        # take a hang-up in the instant after the answer was sent for an answer that never left, and put
        # the jobs back (they would then refuse this lease).
        await trio.sleep(CLAIM_LINGER)
    out.listing(
        "jobs",
        claimed,
        ["id", "lease_id", "lease_expires_at", "retries", "payload"],
        lambda j: [j.id, j.lease_id, j.lease_expires_at, j.retries, compact(j.payload)],
        empty="No jobs to claim",
        right=("retries",),
    )


@api_command(main)
@job_arguments
@click.option("-r", "--result", default=None, help="The result, as JSON (default {}).")
@click.option("--lease-id", help=LEASE_ID_HELP)
async def complete(
    client: StarqClient, out: Output, queue: str, job_id: str, result: str | None, lease_id: str | None
) -> None:
    """Report a claimed job done."""
    status = await client.complete(queue, job_id, json_value(result, "--result"), lease_id=lease_id)
    _moved(out, job_id, status, f"Job {job_id} {status}")


@api_command(main)
@job_arguments
@click.option("-e", "--error", default="", help="What went wrong.")
@click.option("--lease-id", help=LEASE_ID_HELP)
@click.option("--retry/--no-retry", default=True, show_default=True, help="--no-retry dead-letters the job at once.")
async def fail(
    client: StarqClient, out: Output, queue: str, job_id: str, error: str, lease_id: str | None, retry: bool
) -> None:
    """Report a claimed job failed (it is retried with backoff while attempts remain)."""
    answer = await client.fail(queue, job_id, error, lease_id=lease_id, retry=retry)
    out.answer(
        {"status": answer.status, "job_id": answer.job_id, "retries": answer.retries},
        f"Job {job_id} is now {answer.status} (retries: {answer.retries})",
    )


@api_command(main)
@job_arguments
@click.option("--lease-id", required=True, help=LEASE_ID_HELP)
@click.option(
    "--delay",
    type=click.FloatRange(0, protocol.MAX_DELAY),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds before the job can be claimed again (it is scheduled meanwhile).",
)
async def release(client: StarqClient, out: Output, queue: str, job_id: str, lease_id: str, delay: float) -> None:
    """Give a claimed job back without counting an attempt (pending again, or scheduled with --delay)."""
    _moved(out, job_id, await client.release(queue, job_id, lease_id=lease_id, delay=delay))


@api_command(main)
@click.argument("queue")
@click.argument("job_id", required=False)
@click.option("--all-failed", is_flag=True, help="Retry every dead (failed) job of the queue.")
async def retry(client: StarqClient, out: Output, queue: str, job_id: str | None, all_failed: bool) -> None:
    """Put a dead or cancelled job back to pending (or every dead one with --all-failed)."""
    if bool(job_id) == all_failed:
        raise click.UsageError("give a job id or --all-failed (not both)")
    if all_failed:
        count = await client.retry_dead(queue)
        out.answer({"status": "ok", "queue": queue, "retried": count}, f"Retried {count} failed job(s) of {queue}")
        return
    assert job_id is not None  # given, as checked above
    _moved(out, job_id, await client.retry_job(queue, job_id))


@api_command(main)
@job_arguments
async def cancel(client: StarqClient, out: Output, queue: str, job_id: str) -> None:
    """Cancel a waiting, pending, scheduled or claimed job (the worker of a claimed one is told to stop)."""
    status = await client.cancel(queue, job_id)
    _moved(out, job_id, status, f"Job {job_id} {status}")


@api_command(main)
@job_arguments
async def promote(client: StarqClient, out: Output, queue: str, job_id: str) -> None:
    """Make a scheduled job pending now."""
    _moved(out, job_id, await client.promote(queue, job_id))


def _moved(out: Output, job_id: str, status: str, text: str = "") -> None:
    """The answer of a command that moved one job: its new status (``text`` for people, if not the usual)."""
    out.answer({"status": status, "job_id": job_id}, text or f"Job {job_id} is now {status}")
