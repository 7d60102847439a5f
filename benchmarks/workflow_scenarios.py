"""Scenarios for the workflow features: what a queue's event log (``events: true``) costs on the hot paths, and
thousands of clients waiting for jobs' outcomes (``GET …/jobs/{id}?wait_ms=N``), parked and woken.

Like the other scenarios, these make, fill, finish and check their queues over the HTTP API only.
"""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from typing import Any

import orjson
import trio

from . import procstat
from .admin import Admin
from .harness import Server, percentile
from .rawhttp import HTTPConnection
from .scenarios import Sizes, _client_procs, _ready_clients, _tell, cycle, queue_name, submit

# -- the event log's cost ----------------------------------------------------------------------------------------

# The hot paths measured with the queue's event log off and on: (kind, events each measured job appends).
# A submit appends "submitted"; a claim and its report append "claimed" and "completed".
EVENT_PATHS = (("submit_1", 1), ("submit_100", 1), ("cycle_1_complete", 2), ("cycle_50_ack", 2))
EVENT_ID = re.compile(rb"(?:^|\n)id: (\d+)\n")


async def last_event_id(server: Server, queue: str, expect: int, seconds: float = 20) -> int:
    """The highest event id the queue's log replays (``?since=0``): the number of events ever appended, as ids
    count up from 1. Reads until it reaches ``expect``, the stream goes quiet for a second, or ``seconds``."""
    stream = await trio.open_tcp_stream(server.host, server.port)
    highest = 0
    async with stream:
        await stream.send_all(
            f"GET /api/v1/queues/{queue}/events?since=0 HTTP/1.1\r\nHost: x\r\nX-API-Key: dev-key\r\n\r\n".encode()
        )
        tail = b""
        with trio.move_on_after(seconds):
            while highest < expect:
                with trio.move_on_after(1) as quiet:
                    chunk = await stream.receive_some(65536)
                if quiet.cancelled_caught or not chunk:
                    break
                text = tail + chunk
                highest = max([highest, *(int(n) for n in EVENT_ID.findall(text))])
                tail = text[-64:]
    return highest


def _per_job(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """Server and store CPU µs per job of a row."""
    server = 1e6 / row["jobs_per_server_cpu_s"] if row.get("jobs_per_server_cpu_s") else None
    store = None
    if row.get("store_cpu_us_per_request") is not None and row.get("jobs_per_s"):
        store = row["store_cpu_us_per_request"] * row["requests_per_s"] / row["jobs_per_s"]
    return server, store


async def events_cost(server: Server, sampler_of, sizes: Sizes) -> list[dict[str, Any]]:
    """Each hot path on a queue with ``events`` off, then at once on a queue with it on (same server, same
    sizes). The "on" row gives the ratios to the "off" one and the extra CPU per event; it also checks that the
    log holds every event the phase made (its last id = the events expected)."""
    rows: list[dict[str, Any]] = []
    for kind, per_job in EVENT_PATHS:
        pair = []
        for on in (False, True):
            settings = {"events": True} if on else {}
            if kind.startswith("submit_"):
                batch = int(kind.split("_")[1])

                async def submitted(admin: Admin, queue: str, moved: int) -> dict[str, Any]:
                    return {"events_expected": moved, "events_logged": await last_event_id(server, queue, moved)}

                (row,) = await submit(
                    server, sampler_of, sizes, batches=(batch,), settings=settings, inspect=submitted if on else None
                )
            else:
                count, mode = (1, "complete") if kind == "cycle_1_complete" else (50, "ack")
                jobs = sizes.cycle_jobs if count == 1 else sizes.ack_jobs

                async def drained(admin: Admin, queue: str, moved: int, jobs: int = jobs) -> dict[str, Any]:
                    expect = jobs + 2 * moved  # the fill's "submitted", then "claimed" and "completed" per job
                    return {"events_expected": expect, "events_logged": await last_event_id(server, queue, expect)}

                row, _, _ = await cycle(
                    server, sampler_of, sizes, count=count, mode=mode, jobs=jobs, settings=settings,
                    inspect=drained if on else None,
                )  # fmt: skip
            label = row["name"]
            row.update(
                group="events",
                name=f"{label}, events {'on' if on else 'off'}",
                kind=f"events_{kind}_{'on' if on else 'off'}",
                path=label,
                events=on,
                events_per_job=per_job if on else 0,
            )
            row["server_cpu_us_per_job"], row["store_cpu_us_per_job"] = (
                round(x, 1) if x is not None else None for x in _per_job(row)
            )
            if on:
                row["exactly_once"] = row["exactly_once"] and row["events_logged"] == row["events_expected"]
            pair.append(row)
        off, on_row = pair
        if off.get("jobs_per_s") and on_row.get("jobs_per_s"):
            on_row["vs_off"] = round(on_row["jobs_per_s"] / off["jobs_per_s"], 3)
        for where in ("server", "store"):
            a, b = off.get(f"{where}_cpu_us_per_job"), on_row.get(f"{where}_cpu_us_per_job")
            if a and b is not None:  # a tiny phase may measure no CPU at all (0.0): no ratio then
                on_row[f"{where}_cpu_vs_off"] = round(b / a, 3)
                on_row[f"{where}_cpu_us_per_event"] = round((b - a) / per_job, 1)
        rows += pair
    return rows


# -- outcome waiters ---------------------------------------------------------------------------------------------

WAIT_MS = 60_000  # the route's maximum: no waiter may time out while the phase runs
FINISH_CHUNK = 100  # jobs finished per request (one ack, or one bulk cancel)
FINISH_ATTEMPTS = 5  # a finishing request answered 503 is sent again, this many times in all


async def outcome_waiters(server: Server) -> int:
    """Outcome waiters parked in the server (``starq_outcome_waiters``), or -1 while it is too busy to answer."""

    def read() -> int:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-API-Key: dev-key\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        found = re.search(rb"\nstarq_outcome_waiters (\S+)", data)
        return int(float(found.group(1))) if found else -1

    try:
        return await trio.to_thread.run_sync(read)
    except OSError:
        return -1


def _waiting_clients(server: Server, queue: str, ids: list[str]):
    """Client processes that will wait for the outcomes of ``ids`` between them, started and ready."""
    procs = _client_procs(len(ids))
    spec = {"kind": "outcome_wait", "host": server.host, "port": server.port, "queue": queue, "wait_ms": WAIT_MS,
            "seconds": 150}  # fmt: skip
    return _ready_clients([{**spec, "ids": ids[i::procs]} for i in range(procs)])


# A job's planned outcome: (status, mark, lease id). A completed job's result is {"w": mark}, a failed one's error
# is mark; a cancelled job (never claimed) has neither.
Plan = dict[str, tuple[str, str | None, str | None]]


async def _prepare(admin: Admin, queue: str, jobs: int) -> tuple[list[str], Plan]:
    """A queue of ``jobs`` jobs, three quarters of them claimed. Returns the ids in order and each one's outcome
    to come: a claimed job is completed (even places) or dead-lettered (odd), a pending one is cancelled."""
    await admin.create_queue(queue)
    ids = await admin.fill(queue, jobs)
    held: list[dict[str, Any]] = []
    want = jobs - jobs // 4
    while len(held) < want:
        got = await admin.claim(queue, min(100, want - len(held)))
        if not got:
            raise RuntimeError(f"claimed {len(held)} of {want} jobs of {queue}")
        held += got
    plan: Plan = dict.fromkeys(ids, ("cancelled", None, None))
    for n, job in enumerate(held):
        mark = job["id"] if n % 2 == 0 else f"e-{job['id']}"
        plan[job["id"]] = ("completed" if n % 2 == 0 else "failed", mark, job["lease_id"])
    return ids, plan


async def _finish(server: Server, queue: str, ids: list[str], plan: Plan) -> tuple[dict[str, float], int]:
    """Finishes every job as planned, ``FINISH_CHUNK`` at a time in the order of ``ids`` (one ack for the claimed
    ones of a chunk, one bulk cancel for the pending ones). Returns when each job's request was sent (monotonic
    ms), and how many requests were answered 503 (the store call timed out) and sent again: whether the first
    went through is not known, so an item a retry finds already done is not an error (the queue's counts are
    checked afterwards)."""
    sent_at: dict[str, float] = {}
    unavailable = 0
    conn = await HTTPConnection.open(server.host, server.port)
    base = f"/api/v1/queues/{queue}/jobs"

    async def send(path: str, body: dict[str, Any]) -> None:
        nonlocal unavailable
        for attempt in range(FINISH_ATTEMPTS):
            status, reply = await conn.request("POST", path, orjson.dumps(body))
            if status == 503:
                unavailable += 1
                await trio.sleep(0.5)
                continue
            if status != 200 or (orjson.loads(reply)["errors"] and attempt == 0):
                raise RuntimeError(f"{path}: {status} {reply[:300]!r}")
            return
        raise RuntimeError(f"{path}: 503 {FINISH_ATTEMPTS} times")

    try:
        for first in range(0, len(ids), FINISH_CHUNK):
            chunk = ids[first : first + FINISH_CHUNK]
            complete = [{"id": i, "lease_id": plan[i][2], "result": {"w": plan[i][1]}} for i in chunk
                        if plan[i][0] == "completed"]  # fmt: skip
            fail = [{"id": i, "lease_id": plan[i][2], "error": plan[i][1], "retry": False} for i in chunk
                    if plan[i][0] == "failed"]  # fmt: skip
            cancel = [i for i in chunk if plan[i][0] == "cancelled"]
            now = time.monotonic() * 1000
            for i in chunk:
                sent_at[i] = now
            if complete or fail:
                await send(base + "/ack", {"complete": complete, "fail": fail})
            if cancel:
                await send(base + "/bulk", {"action": "cancel", "ids": cancel})
    finally:
        await conn.aclose()
    return sent_at, unavailable


def _answered_right(answer: list[Any], plan: Plan, sent_at: dict[str, float]) -> bool:
    """A waiter's answer: 200, the outcome planned for its job, and not before that job was finished."""
    job_id, http_status, status, result, error, at = answer
    want, mark, _ = plan[job_id]
    if http_status != 200 or status != want or at < sent_at[job_id]:
        return False
    if want == "completed":
        return result == {"w": mark}
    if want == "failed":
        return error == mark
    return True


async def outcomes(server: Server, sampler_of, store_pid: int | None, waiters: int) -> dict[str, Any]:
    """Parks ``waiters`` clients, each waiting for the outcome of its own job (claimed or pending, in one queue),
    then finishes every job through the API (completed, dead-lettered or cancelled, 100 per request) and
    checks that every waiter got its job's outcome exactly once. Measured: the time to park them all (until the
    server reports them parked), the server's and the store's CPU per waiter while parking and while waking,
    server RSS per waiter, store connections while parked, the time from the first finishing request to the
    last answer and each waiter's delay after its job's finishing request was sent. For reference, the same
    finishing on an identical queue with no waiters (what waking adds to it).

    ``server`` should be fresh (the caller starts one per size), as for long-poll claims."""
    queue = queue_name("outcomes")
    async with await Admin.open(server) as admin:
        ids, plan = await _prepare(admin, queue, waiters)
    sampler = sampler_of()
    await trio.to_thread.run_sync(sampler.sample)
    rss_before = sampler.rss_mb
    server_cpu, store_cpu = procstat.CpuMeter(server.pids), procstat.CpuMeter([store_pid] if store_pid else [])
    results = []
    park_seconds = wake_seconds = None
    async with _waiting_clients(server, queue, ids) as clients:
        server_cpu.start()
        store_cpu.start()
        started = time.monotonic()
        await _tell(clients, b"go\n")
        with trio.move_on_after(90):
            while await outcome_waiters(server) < waiters:
                await trio.sleep(0.1)
            park_seconds = time.monotonic() - started
        park_server, park_store = server_cpu.stop(), store_cpu.stop()
        sent = [(await lines.next())["sent_ms"] for _, lines in clients]
        await trio.to_thread.run_sync(sampler.sample)
        parked_rss, parked_conns = procstat.rss_mb(server.pids), sampler.redis_conns
        server_cpu.start()
        store_cpu.start()
        finish_started = time.monotonic()
        sent_at, finish_503 = await _finish(server, queue, ids, plan)
        finish_seconds = time.monotonic() - finish_started
        with trio.move_on_after(60):
            for _, lines in clients:
                results.append(await lines.next())  # a client answers once every one of its waiters was answered
        wake_server, wake_store = server_cpu.stop(), store_cpu.stop()
        if len(results) < len(clients):  # some waiter was never answered: hang up and take what came
            late = clients[len(results) :]
            await _tell(late, b"release\n")
            for _, lines in late:
                with trio.fail_after(60):
                    results.append(await lines.next())
    answers = [a for r in results for a in r["answers"]]
    if answers:
        wake_seconds = (max(a[5] for a in answers) - finish_started * 1000) / 1000
    delays = [a[5] - sent_at[a[0]] for a in answers if a[0] in sent_at]
    answered = [a[0] for a in answers]
    left = await outcome_waiters(server)
    statuses = {s: sum(1 for v in plan.values() if v[0] == s) for s in ("completed", "failed", "cancelled")}
    async with await Admin.open(server) as admin:
        counts = await admin.counts(queue)
        await admin.delete_queue(queue)
        # The same finishing with no waiter: what the jobs' transitions cost by themselves.
        ref_queue = queue_name("outcomes-ref")
        ref_ids, ref_plan = await _prepare(admin, ref_queue, waiters)
        server_cpu.start()
        store_cpu.start()
        _, ref_503 = await _finish(server, ref_queue, ref_ids, ref_plan)
        ref_server, ref_store = server_cpu.stop(), store_cpu.stop()
        await admin.delete_queue(ref_queue)
    exact = (
        sum(r["errors"] for r in results) == 0
        and len(answered) == len(set(answered)) == waiters
        and set(answered) == set(ids)
        and all(_answered_right(a, plan, sent_at) for a in answers)
        and all(counts[s] == n for s, n in statuses.items())
        and counts["pending"] == counts["claimed"] == 0
        and left == 0
    )

    def per_waiter(seconds: float) -> int:
        return round(1e6 * seconds / waiters)

    return {
        "group": "outcomes",
        "name": f"outcome waits {waiters:,} waiters",
        "kind": f"outcomes_{waiters}",
        "waiters": waiters,
        "outcomes": statuses,
        "park_seconds": round(park_seconds, 2) if park_seconds is not None else None,
        "client_sent_seconds": round(max(sent) / 1000, 2),
        "client_procs": len(clients),
        "park_server_cpu_us_per_waiter": per_waiter(park_server),
        "park_store_cpu_us_per_waiter": per_waiter(park_store),
        "server_rss_mb": round(parked_rss, 1),
        "server_rss_before_mb": round(rss_before, 1),
        "rss_kb_per_waiter": round((parked_rss - rss_before) * 1024 / waiters, 1),
        "redis_conns": parked_conns,
        "finish_seconds": round(finish_seconds, 2),
        "finish_503": finish_503,  # finishing requests answered 503 (sent again)
        "finish_only_503": ref_503,
        "wake_seconds": round(wake_seconds, 2) if wake_seconds is not None else None,
        "wake_p50_ms": round(percentile(delays, 0.5), 1),
        "wake_p99_ms": round(percentile(delays, 0.99), 1),
        "wake_max_ms": round(max(delays), 1) if delays else None,
        "wake_server_cpu_us_per_waiter": per_waiter(wake_server),
        "wake_store_cpu_us_per_waiter": per_waiter(wake_store),
        "finish_only_server_cpu_us_per_job": per_waiter(ref_server),
        "finish_only_store_cpu_us_per_job": per_waiter(ref_store),
        "answered": len(answers),
        # What the waiters were answered (HTTP status and job status): all 200 and finished, when all went well.
        "answers_by_status": dict(Counter(f"{a[1]} {a[2]}" for a in answers)),
        "left_waiting": left,
        "exactly_once": exact,
    }
