"""``starq submit``: stream a JSONL file of payloads into a queue, several batches in flight at once (or submit one
job given inline with ``--payload``). Options such as ``--priority``, ``--delay``, ``--tag`` or ``--depends-on``
apply to every job.

A reader task reads one batch at a time (in a thread, so the event loop never blocks on the disk) into a channel
that holds at most ``concurrency`` batches; ``concurrency`` sender tasks take batches from it and post them. So
memory stays at a few batches whatever the file's size.

When a batch is refused, or a bad line is met without ``--skip-bad``, the reader stops and the batches already
in flight finish, so the totals printed at the end are exact: every line before the first problem is either
submitted or reported, and nothing after it is sent.

``--batch`` (or a callback option) makes the file one batch of the API (tracked together, with a callback job
when all have finished): a batch is one request, so the file is read whole first (at most ``MAX_BATCH_JOBS``
jobs and ``MAX_BATCH_BYTES``) and sent only if it fits.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, BinaryIO

import asyncclick as click
import attrs
import trio
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from starq.worker_kit import ServerUnreachable, StarqError, Submitted, protocol
from starq.worker_kit.protocol import DEPENDENCY_FAILURE_CHOICES, MAX_DEPENDENCIES, MAX_PRIORITY

from .group import api_command, explain, main
from .jsonl import MAX_BATCH_BYTES, BadLine, Batch, JsonlReader
from .options import check_iso_time, given_job_options, job_options, json_object, stack
from .output import Output

if TYPE_CHECKING:
    from starq.worker_kit import StarqClient

MAX_BAD_SHOWN = 20  # bad lines printed one by one with --skip-bad; the rest are only counted
MAX_BATCH_JOBS = protocol.DEFAULT_MAX_BATCH  # the most jobs of one request (-b), and so of a --batch


@attrs.define
class Totals:
    submitted: int = 0
    skipped: int = 0
    bad: int = 0
    lines: int = 0
    bytes_read: int = 0
    error: str = ""


def _check_dependencies(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    if len(value) > MAX_DEPENDENCIES:
        raise click.BadParameter(f"at most {MAX_DEPENDENCIES} dependencies, not {len(value)}")
    for dependency in value:
        if not dependency or dependency.startswith("#"):
            # "#i" names item i of one request; a file's lines are not items of one request.
            raise click.BadParameter(f"{dependency!r} is not a job id")
    return value


dependency_and_batch_options = stack(
    click.option(
        "--depends-on",
        "depends_on",
        multiple=True,
        metavar="ID",
        callback=_check_dependencies,
        help="A job of the queue every job waits for (status waiting until it has completed); repeat it for "
        f"more (at most {MAX_DEPENDENCIES}).",
    ),
    click.option(
        "--on-dependency-failure",
        type=click.Choice(DEPENDENCY_FAILURE_CHOICES),
        help="When a dependency is dead-lettered or cancelled: cancel the jobs too [server default], or run them.",
    ),
    click.option(
        "--batch",
        "as_batch",
        is_flag=True,
        help=f"Submit the jobs as one batch (starq batch QUEUE ID shows it): one request, at most "
        f"{MAX_BATCH_JOBS} jobs.",
    ),
    click.option(
        "--callback-payload",
        metavar="JSON",
        help="A batch whose callback job, with this payload, is submitted once all its jobs have finished "
        "(implies --batch).",
    ),
    click.option(
        "--callback-queue", metavar="QUEUE", help="The queue the callback goes to (default: this one; implies --batch)."
    ),
    click.option(
        "--callback-priority", type=click.IntRange(0, MAX_PRIORITY), help="The callback's priority (implies --batch)."
    ),
)


def given_batch(params: dict[str, Any]) -> dict[str, Any] | None:
    """Takes the batch options out of a command's parameters: the request's ``batch``, or None for no batch."""
    callback = {
        "payload": json_object(params.pop("callback_payload"), "--callback-payload"),
        "queue": params.pop("callback_queue"),
        "priority": params.pop("callback_priority"),
    }
    callback = {name: value for name, value in callback.items() if value is not None}
    if callback:
        return {"callback": callback}
    return {} if params.pop("as_batch") else None


@api_command(main)
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("-q", "--queue", required=True, help="The queue to submit to.")
@click.option(
    "--payload", default=None, metavar="JSON", help="Submit one job with this payload (a JSON object), not a file."
)
@click.option(
    "-b",
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_JOBS),
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
    type=click.FloatRange(0, protocol.MAX_DELAY),
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
@dependency_and_batch_options
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
    depends_on: tuple[str, ...],
    on_dependency_failure: str | None,
    **options: Any,
) -> None:
    """Submit a JSONL file (one payload object per line; - for stdin) as jobs, or one job with --payload.

    The job options (--priority, --key, --tag, --delay, --depends-on, ...) apply to every job of the file.
    """
    if (file is None) == (payload is None):
        raise click.UsageError("give a FILE of payloads (- for stdin) or --payload JSON (one job), not both")
    if delay is not None and run_at is not None:
        raise click.UsageError("give --delay or --run-at, not both")
    batch = given_batch(options)
    shared = given_job_options(options)
    if delay is not None:
        shared["delay"] = delay
    if run_at is not None:
        shared["run_at"] = run_at
    if depends_on:
        shared["depends_on"] = list(depends_on)
    if on_dependency_failure is not None:
        shared["on_dependency_failure"] = on_dependency_failure
    if payload is not None:
        await _submit_one(client, out, queue, {"payload": json_object(payload, "--payload"), **shared}, batch)
        return
    assert file is not None  # one of the two, as checked above
    totals = Totals()
    started = time.monotonic()
    with ExitStack() as stack:
        stream: BinaryIO = sys.stdin.buffer if file == "-" else stack.enter_context(open(file, "rb"))  # noqa: ASYNC230 - read in blocks between awaits
        batch_id = None
        if batch is not None:
            batch_id = await _submit_as_batch(client, out, stream, queue, shared, batch, skip_bad, totals)
        else:
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
    _summarize(out, queue, totals, time.monotonic() - started, batch_id=batch_id)
    if totals.error or (totals.bad and not skip_bad):
        raise click.exceptions.Exit(1)


async def _submit_one(
    client: StarqClient, out: Output, queue: str, item: dict[str, Any], batch: dict[str, Any] | None
) -> None:
    answer = await client.submit_many(queue, [item], batch=False if batch is None else batch)
    (job,) = answer.jobs
    in_batch = f" in batch {answer.batch_id}" if answer.batch_id else ""
    if out.json_mode:
        shown: dict[str, Any] = {"jobs": [job.raw], "submitted": answer.submitted, "skipped": answer.skipped}
        if answer.batch_id:
            shown["batch_id"] = answer.batch_id
        out.json(shown)
    elif answer.skipped:
        out.line(f"Not submitted: a duplicate of job {job.id} ({job.status}) in '{queue}'{in_batch}")
    else:
        out.line(f"Submitted job {job.id} to '{queue}' ({job.status}){in_batch}")


async def _submit_as_batch(
    client: StarqClient,
    out: Output,
    stream: BinaryIO,
    queue: str,
    shared: dict[str, Any],
    batch: dict[str, Any],
    skip_bad: bool,
    totals: Totals,
) -> str:
    """Sends the whole file as one batch, in one request, if it fits in one; returns the batch's id ("" if none
    was made)."""
    reader = JsonlReader(stream, batch_size=MAX_BATCH_JOBS, options=shared, request={"batch": batch}, skip_bad=skip_bad)
    chunk = await trio.to_thread.run_sync(reader.read_batch)
    bad = list(chunk.bad)
    more = None if chunk.stop else await trio.to_thread.run_sync(reader.read_batch)
    if more is not None:
        bad += more.bad
    totals.lines, totals.bad = reader.line, len(bad)
    if skip_bad:
        for line in bad[:MAX_BAD_SHOWN]:
            out.note(f"skipped line {line.number}: {line.reason}")
    if bad and not skip_bad:
        first = bad[0]
        _fail(out, totals, f"line {first.number}: {first.reason}; nothing was sent (a batch is sent whole)")
    elif more is not None and more.batch is not None:
        _fail(
            out,
            totals,
            f"a batch is one request, of at most {MAX_BATCH_JOBS} jobs and {MAX_BATCH_BYTES // 2**20} MiB: "
            f"this file has more; nothing was sent",
        )
    elif chunk.batch is None:
        _fail(out, totals, "no jobs in the file: no batch was made")
    if totals.error or chunk.batch is None:
        return ""
    answer = await _send(client, out, queue, chunk.batch, totals)
    if answer is None:
        return ""
    totals.submitted, totals.skipped = answer.submitted, answer.skipped
    return answer.batch_id


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
                answer = await _send(client, out, queue, batch, totals)
                if answer is not None:
                    totals.submitted += answer.submitted
                    totals.skipped += answer.skipped
                    advance()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        async with receive:
            for _ in range(concurrency):
                nursery.start_soon(send_all, receive.clone())


async def _send(client: StarqClient, out: Output, queue: str, batch: Batch, totals: Totals) -> Submitted | None:
    """Posts one batch of lines; when it is refused or the server cannot be reached, says which lines and what
    became of them, and returns None."""
    try:
        return await client.submit_encoded(queue, batch.body)
    except ServerUnreachable as exc:
        maybe = " may or may not have been accepted" if exc.maybe_processed else " were not sent"
        _fail(out, totals, f"lines {batch.first}-{batch.last}{maybe}: {exc.detail}")
    except StarqError as exc:
        _fail(out, totals, f"lines {batch.first}-{batch.last} refused: {explain(exc)}")
    return None


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


def _summarize(out: Output, queue: str, totals: Totals, seconds: float, *, batch_id: str | None = None) -> None:
    """The totals; with ``batch_id`` (a --batch submit: ``""`` when none was made), the batch too."""
    rate = (totals.submitted + totals.skipped) / seconds if seconds > 0 else 0.0
    if out.json_mode:
        summary: dict[str, Any] = {
            "queue": queue,
            "submitted": totals.submitted,
            "skipped": totals.skipped,
            "bad_lines": totals.bad,
            "lines": totals.lines,
            "seconds": round(seconds, 3),
            "jobs_per_second": round(rate, 1),
            "error": totals.error,
        }
        if batch_id is not None:
            summary["batch_id"] = batch_id
        out.json(summary)
        return
    text = f"Submitted {totals.submitted} job(s) to '{queue}' in {seconds:.1f} s ({rate:,.0f} jobs/s)"
    if batch_id:
        text += f" as batch {batch_id}"
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
