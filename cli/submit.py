"""``starq submit``: stream a JSONL file of payloads into a queue, several batches in flight at once (or submit one
job given inline with ``--payload``). Options such as ``--priority``, ``--delay`` or ``--tag`` apply to every job.

A reader task reads one batch at a time (in a thread, so the event loop never blocks on the disk) into a channel
that holds at most ``concurrency`` batches; ``concurrency`` sender tasks take batches from it and post them. So
memory stays at a few batches whatever the file's size.

When a batch is refused, or a bad line is met without ``--skip-bad``, the reader stops and the batches already
in flight finish, so the totals printed at the end are exact: every line before the first problem is either
submitted or reported, and nothing after it is sent.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from typing import Any, BinaryIO

import asyncclick as click
import attrs
import trio
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from starq.worker_kit import ServerUnreachable, StarqClient, StarqError

from .group import api_command, main
from .jsonl import BadLine, Batch, JsonlReader
from .options import check_iso_time, given_job_options, job_options, json_object
from .output import Output

MAX_BAD_SHOWN = 20  # bad lines printed one by one with --skip-bad; the rest are only counted
MAX_DELAY = 366 * 86400  # the server's limit of a job's delay, in seconds


@attrs.define
class Totals:
    submitted: int = 0
    skipped: int = 0
    bad: int = 0
    lines: int = 0
    bytes_read: int = 0
    error: str = ""


@api_command(main)
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("-q", "--queue", required=True, help="The queue to submit to.")
@click.option(
    "--payload", default=None, metavar="JSON", help="Submit one job with this payload (a JSON object), not a file."
)
@click.option(
    "-b",
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Jobs per request (atomic: a batch is accepted whole or not at all).",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Batches in flight at once (1 keeps the file's order).",
)
@job_options
@click.option(
    "--delay",
    type=click.FloatRange(0, MAX_DELAY),
    default=None,
    metavar="SECONDS",
    help="Every job becomes ready this long after it is submitted (not with --run-at).",
)
@click.option(
    "--run-at",
    default=None,
    metavar="TIME",
    callback=check_iso_time,
    help="Every job becomes ready at this ISO 8601 time with a zone, e.g. 2026-12-01T08:00:00Z (not with --delay).",
)
@click.option("--skip-bad", is_flag=True, help="Report bad lines and go on (default: stop at the first).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
async def submit(
    client: StarqClient,
    out: Output,
    file: str | None,
    queue: str,
    payload: str | None,
    batch_size: int,
    concurrency: int,
    delay: float | None,
    run_at: str | None,
    skip_bad: bool,
    progress: bool | None,
    **options: Any,
) -> None:
    """Submit a JSONL file (one payload object per line; - for stdin) as jobs, or one job with --payload.

    The job options (--priority, --key, --tag, --delay, ...) apply to every job of the file.
    """
    if (file is None) == (payload is None):
        raise click.UsageError("give a FILE of payloads (- for stdin) or --payload JSON (one job), not both")
    if delay is not None and run_at is not None:
        raise click.UsageError("give --delay or --run-at, not both")
    shared = given_job_options(options)
    if delay is not None:
        shared["delay"] = delay
    if run_at is not None:
        shared["run_at"] = run_at
    if payload is not None:
        await _submit_one(client, out, queue, {"payload": json_object(payload, "--payload"), **shared})
        return
    assert file is not None  # one of the two, as checked above
    totals = Totals()
    started = time.monotonic()
    with ExitStack() as stack:
        stream: BinaryIO = sys.stdin.buffer if file == "-" else stack.enter_context(open(file, "rb"))  # noqa: ASYNC230 - read in blocks between awaits
        size = None if file == "-" else _size(stream)
        reader = JsonlReader(stream, batch_size=batch_size, options=shared, skip_bad=skip_bad)
        show = progress if progress is not None else (out.err.is_terminal and not out.json_mode)
        bar = stack.enter_context(_progress(out, size)) if show else None
        task = bar.add_task("submitting", total=size, jobs=0, rate=0.0) if bar else None

        def advance() -> None:
            if bar is not None and task is not None:
                elapsed = max(time.monotonic() - started, 1e-6)
                done = totals.submitted + totals.skipped
                bar.update(task, completed=totals.bytes_read, jobs=done, rate=done / elapsed)

        await _pump(client, out, reader, queue, concurrency, totals, advance)
        advance()
    seconds = time.monotonic() - started
    _summarize(out, queue, totals, seconds)
    if totals.error or (totals.bad and not skip_bad):
        raise click.exceptions.Exit(1)


async def _submit_one(client: StarqClient, out: Output, queue: str, item: dict[str, Any]) -> None:
    answer = await client.submit_many(queue, [item])
    (job,) = answer.jobs
    if out.json_mode:
        out.json({"jobs": [job.raw], "submitted": answer.submitted, "skipped": answer.skipped})
    elif answer.skipped:
        out.line(f"Not submitted: a duplicate of job {job.id} ({job.status}) in '{queue}'")
    else:
        out.line(f"Submitted job {job.id} to '{queue}' ({job.status})")


async def _pump(
    client: StarqClient, out: Output, reader: JsonlReader, queue: str, concurrency: int, totals: Totals, advance
) -> None:
    send, receive = trio.open_memory_channel[Batch](concurrency)

    async def read_all() -> None:
        async with send:
            while not totals.error:
                chunk = await trio.to_thread.run_sync(reader.read_batch)
                totals.bytes_read += chunk.bytes_read
                for bad in chunk.bad:
                    _report_bad(out, bad, totals, stopping=not reader.skip_bad)
                if chunk.batch is not None:
                    await send.send(chunk.batch)
                totals.lines = reader.line
                if chunk.stop:
                    break

    async def send_all(batches: trio.MemoryReceiveChannel[Batch]) -> None:
        async with batches:
            async for batch in batches:
                if totals.error:
                    continue  # after a refusal nothing more is sent; the batches in flight still finish
                try:
                    answer = await client.submit_encoded(queue, batch.body)
                except ServerUnreachable as exc:
                    maybe = " may or may not have been accepted" if exc.maybe_processed else " were not sent"
                    _fail(out, totals, f"lines {batch.first}-{batch.last}{maybe}: {exc.detail}")
                except StarqError as exc:
                    _fail(out, totals, f"lines {batch.first}-{batch.last} refused: {exc.detail}")
                else:
                    totals.submitted += answer.submitted
                    totals.skipped += answer.skipped
                    advance()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        async with receive:
            for _ in range(concurrency):
                nursery.start_soon(send_all, receive.clone())


def _fail(out: Output, totals: Totals, message: str) -> None:
    if not totals.error:
        totals.error = message
        out.error(message)


def _report_bad(out: Output, bad: BadLine, totals: Totals, *, stopping: bool) -> None:
    totals.bad += 1
    if stopping:
        out.error(f"line {bad.number}: {bad.reason}; nothing after it was sent (--skip-bad to go on)")
    elif totals.bad <= MAX_BAD_SHOWN:
        out.note(f"skipped line {bad.number}: {bad.reason}")


def _summarize(out: Output, queue: str, totals: Totals, seconds: float) -> None:
    rate = (totals.submitted + totals.skipped) / seconds if seconds > 0 else 0.0
    if out.json_mode:
        out.json(
            {
                "queue": queue,
                "submitted": totals.submitted,
                "skipped": totals.skipped,
                "bad_lines": totals.bad,
                "lines": totals.lines,
                "seconds": round(seconds, 3),
                "jobs_per_second": round(rate, 1),
                "error": totals.error,
            }
        )
        return
    text = f"Submitted {totals.submitted} job(s) to '{queue}' in {seconds:.1f} s ({rate:,.0f} jobs/s)"
    if totals.skipped:
        text += f"; {totals.skipped} skipped as duplicates"
    if totals.bad:
        text += f"; {totals.bad} bad line(s)"
    out.line(text)


def _size(stream: BinaryIO) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size
    except (OSError, ValueError):
        return None


def _progress(out: Output, size: int | None) -> Progress:
    columns: list[ProgressColumn] = [TextColumn("{task.description}")]
    if size:
        columns += [BarColumn(), TaskProgressColumn()]
    columns += [
        TextColumn("{task.fields[jobs]:,} jobs"),
        TextColumn("{task.fields[rate]:,.0f} jobs/s"),
        TimeElapsedColumn(),
    ]
    return Progress(*columns, console=out.err, transient=False)
