"""A load-generating client process: ``python -m benchmarks.client '<json spec>'`` prints one JSON result.

The orchestrator (``benchmarks.run``) starts one or more of these so that generating load never competes with
the orchestrator's own bookkeeping. Every loop here is bounded by a request count and by a deadline.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import trio

from .rawhttp import HTTPConnection, ResponseError

# Opening thousands of connections at once only produces SYN retries; open this many at a time.
CONNECT_CONCURRENCY = 256


async def _ready_then_go() -> float:
    """Tells the harness this client is ready, waits for its go (a line on stdin), and returns the start time in
    ms: every client of a phase starts together, with the garbage collector off for the measured part."""
    print(json.dumps({"ready": True}), flush=True)
    await trio.to_thread.run_sync(sys.stdin.readline)
    gc.disable()
    return _now_ms()


def _now_ms() -> float:
    return time.monotonic() * 1000


async def _drive(
    host: str, port: int, connections: int, seconds: float, task, stop: trio.CancelScope | None = None
) -> tuple[float, float]:
    """Runs ``task(conn)`` on that many keep-alive connections at once, bounded by ``seconds`` plus a margin
    (and ended early when a task cancels ``stop``); returns the start and end times in ms."""
    conns = [await HTTPConnection.open(host, port) for _ in range(connections)]
    start = _now_ms()
    with trio.move_on_after(seconds + 30), stop or trio.CancelScope():
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(task, conn)
    end = _now_ms()
    for conn in conns:
        await conn.aclose()
    return start, end


class _Tally:
    """The latency of every request a client process sends through ``send``, and its errors."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0

    async def send(self, conn: HTTPConnection, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        t0 = _now_ms()
        reply = await conn.request(method, path, body)
        self.latencies.append(_now_ms() - t0)
        return reply

    def result(self, start: float, end: float, **more: Any) -> dict[str, Any]:
        """The process's result: when its phase started and ended (ms), its requests, and ``more``."""
        counts = {"requests": len(self.latencies), "errors": self.errors, "latencies": self.latencies}
        return {"start_ms": start, "end_ms": end, **counts, **more}


# One request of a loop: method, path, body, and what the answer's body must contain to count as right.
Request = tuple[str, str, bytes, bytes]


async def _request_loop(
    spec: dict[str, Any], lists: list[list[Request]], right: Callable[[int, bytes, bytes], bool]
) -> dict[str, Any]:
    """Connection ``i`` sends the requests of ``lists[i % len(lists)]`` in turn, round and round, until
    ``requests`` are done or ``seconds`` pass; an answer is an error unless ``right(status, body, expect)``."""
    budget = {"left": spec["requests"]}
    tally = _Tally()
    deadline = trio.current_time() + spec["seconds"]
    turn = iter(range(10**9))

    async def one(conn: HTTPConnection) -> None:
        mine = lists[next(turn) % len(lists)]
        i = 0
        while budget["left"] > 0 and trio.current_time() < deadline:
            budget["left"] -= 1
            method, path, body, expect = mine[i % len(mine)]
            i += 1
            status, reply = await tally.send(conn, method, path, body)
            tally.errors += not right(status, reply, expect)

    return tally.result(*await _drive(spec["host"], spec["port"], spec["connections"], spec["seconds"], one))


class _OneRequestEach:
    """Connections of their own, one request on each (parked claims, outcome waits), opened
    ``CONNECT_CONCURRENCY`` at a time."""

    def __init__(self, host: str, port: int, requests: int) -> None:
        self.host, self.port, self.requests = host, port, requests
        self.conns: list[HTTPConnection] = []
        self._limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)
        self._sent = 0
        self._all_sent = trio.Event()

    async def send(self, request: bytes) -> HTTPConnection:
        """Opens a connection and writes ``request`` on it; returns it for its answer to be read."""
        async with self._limiter:
            conn = await HTTPConnection.connect(self.host, self.port)
            self.conns.append(conn)
            await conn.send_raw(request)
        self._sent += 1
        if self._sent == self.requests:
            self._all_sent.set()
        return conn

    async def say_sent(self, start: float) -> None:
        """Waits until every request is written, then prints ``sent`` (ms since ``start``) for the harness."""
        if self.requests:
            await self._all_sent.wait()
        print(json.dumps({"sent_ms": _now_ms() - start}), flush=True)

    async def close(self) -> None:
        """Hangs up on every connection, and turns the garbage collector back on (``_ready_then_go``)."""
        for conn in self.conns:
            with trio.move_on_after(1):
                await conn.aclose()
        gc.enable()


async def get_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Each connection repeats one request until ``requests`` are done or ``seconds`` pass (any answer below 400
    is right)."""
    request = (spec.get("method", "GET"), spec["path"], spec.get("body", "").encode(), b"")
    return await _request_loop(spec, [[request]], lambda status, _reply, _expect: status < 400)


async def submit(spec: dict[str, Any]) -> dict[str, Any]:
    """Each connection submits batches of ``batch`` jobs (``batch`` 1 = the one-job body) until ``jobs`` are
    submitted by this process or ``seconds`` pass. Returns the acknowledged ids."""
    host, port, queue, batch = spec["host"], spec["port"], spec["queue"], spec["batch"]
    path = f"/api/v1/queues/{queue}/jobs"
    left = {"jobs": spec["jobs"]}
    ids: list[str] = []
    tally = _Tally()
    deadline = trio.current_time() + spec["seconds"]
    seq = iter(range(10**9))

    async def one(conn: HTTPConnection) -> None:
        while left["jobs"] > 0 and trio.current_time() < deadline:
            n = min(batch, left["jobs"])
            left["jobs"] -= n
            if batch == 1:
                body = orjson.dumps({"payload": {"n": next(seq)}})
            else:
                body = orjson.dumps({"jobs": [{"payload": {"n": next(seq)}} for _ in range(n)]})
            status, reply = await tally.send(conn, "POST", path, body)
            if status != 201:
                tally.errors += 1
                continue
            ids.extend(job["id"] for job in orjson.loads(reply)["jobs"])

    start, end = await _drive(host, port, spec["connections"], spec["seconds"], one)
    return tally.result(start, end, ids=ids)


async def cycle(spec: dict[str, Any]) -> dict[str, Any]:
    """Workers claim ``count`` jobs at a time and report each (``mode`` "complete": one PUT per job, the original
    README's worker) or all at once (``mode`` "ack": one POST …/jobs/ack), until a claim comes back empty or
    ``seconds`` pass. Returns every claimed and every completed id, and when the last job was reported.

    ``block_ms`` (default 0) is the claims' wait: a rate-limited queue answers an empty claim while its window's
    budget is spent, so its workers wait for the next window instead. With ``timeline``, each job's claim answer
    and report times are returned too (ms: ``[id, claimed, reported]``), for the flow-control checks.

    With ``jobs`` (mode "ack"), the process stops once it has reported that many (the claims still parked on the
    drained queue are hung up instead of waiting out their ``block_ms``)."""
    host, port, queue, count, mode = spec["host"], spec["port"], spec["queue"], spec["count"], spec["mode"]
    base = f"/api/v1/queues/{queue}/jobs"
    block_ms = spec.get("block_ms", 0)
    claim_body = orjson.dumps({"count": count, "block_ms": block_ms})
    keep_timeline = spec.get("timeline", False)
    claimed: list[str] = []
    completed: list[str] = []
    timeline: list[tuple[str, float, float]] = []
    tally = _Tally()
    last = 0.0
    deadline = trio.current_time() + spec["seconds"]
    stop = trio.CancelScope()
    enough = spec.get("jobs")

    async def worker(conn: HTTPConnection) -> None:
        nonlocal last
        while trio.current_time() < deadline:
            status, reply = await tally.send(conn, "POST", base + "/claim", claim_body)
            got_at = _now_ms()
            if status != 200:
                tally.errors += 1
                continue
            jobs = orjson.loads(reply)["jobs"]
            if not jobs:
                if block_ms:
                    # The claim that waited out block_ms on the drained queue: not part of the load.
                    tally.latencies.pop()
                return
            claimed.extend(job["id"] for job in jobs)
            if mode == "ack":
                body = orjson.dumps(
                    {"complete": [{"id": j["id"], "lease_id": j["lease_id"], "result": {"ok": 1}} for j in jobs]}
                )
                sent_at = _now_ms()
                status, reply = await tally.send(conn, "POST", base + "/ack", body)
                if status != 200:
                    tally.errors += 1
                    continue
                results = orjson.loads(reply)["results"]
                done = [r["job_id"] for r in results if r["ok"]]
                completed.extend(done)
                tally.errors += len(results) - len(done)
                if keep_timeline:
                    timeline.extend((job_id, got_at, sent_at) for job_id in done)
                last = _now_ms()
                if enough and len(completed) >= enough:
                    stop.cancel()
            else:
                for job in jobs:
                    body = orjson.dumps({"lease_id": job["lease_id"], "result": {"ok": 1}})
                    sent_at = _now_ms()
                    status, _ = await tally.send(conn, "PUT", f"{base}/{job['id']}/complete", body)
                    if status == 200:
                        completed.append(job["id"])
                        if keep_timeline:
                            timeline.append((job["id"], got_at, sent_at))
                        last = _now_ms()
                    else:
                        tally.errors += 1

    start, end = await _drive(host, port, spec["workers"], spec["seconds"], worker, stop)
    return tally.result(start, end, last_ms=last or end, claimed=claimed, completed=completed, timeline=timeline)


async def requests(spec: dict[str, Any]) -> dict[str, Any]:
    """Connection ``i`` sends the requests of ``spec["lists"][i % len(lists)]`` in turn, round and round, until
    ``requests`` are done or ``seconds`` pass. Each request is ``[method, path, body, expect]``: an answer counts
    as right if its status is 200 and ``expect`` (e.g. the quoted id of the job asked for) is in its body."""
    lists = [
        [(method, path, body.encode(), expect.encode()) for method, path, body, expect in one] for one in spec["lists"]
    ]
    return await _request_loop(spec, lists, lambda status, reply, expect: status == 200 and expect in reply)


async def longpoll(spec: dict[str, Any]) -> dict[str, Any]:
    """Parks ``waiters`` claims with ``block_ms`` on connections of their own. Prints ``ready`` once started and
    begins when a line arrives on stdin (so process start-up is not counted as parking); prints ``sent`` once
    every claim is written, records the jobs that arrive (with the delay since the ``t`` in their payload, a
    ``time.monotonic()`` of the submitter: system-wide on Linux), and hangs up on every connection when a line
    arrives on stdin again (or after ``seconds``).

    Kept lean so that parking measures the server: connections are opened without name resolution, each
    claim is one task, and the cyclic garbage collector is off while the claims are held (its full
    collections over the growing set of connections were 30 % of this process's CPU while opening 10,000)."""
    host, port, queue = spec["host"], spec["port"], spec["queue"]
    path = f"/api/v1/queues/{queue}/jobs/claim"
    received: list[tuple[str, float]] = []
    empty = errors = 0
    error_samples: list[str] = []  # the first few error answers, for the report of a failed run
    claims = _OneRequestEach(host, port, spec["waiters"])
    request: bytes = b""

    async def park() -> None:
        nonlocal empty, errors
        conn = await claims.send(request)
        status, reply = await conn.read_response()
        if status != 200:
            errors += 1
            if len(error_samples) < 5:
                error_samples.append(f"{status} {reply[:200].decode(errors='replace')}")
            return
        jobs = orjson.loads(reply)["jobs"]
        if not jobs:
            empty += 1
        for job in jobs:
            received.append((job["id"], time.monotonic() * 1000 - job["payload"]["t"] * 1000))

    start = await _ready_then_go()
    with trio.move_on_after(spec["seconds"]):
        async with trio.open_nursery() as nursery:
            request = HTTPConnection.encode_for(
                host, port, "POST", path, orjson.dumps({"count": 1, "block_ms": spec["block_ms"]})
            )
            for _ in range(spec["waiters"]):
                nursery.start_soon(park)
            await claims.say_sent(start)
            await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()
    await claims.close()
    return {"received": received, "empty": empty, "errors": errors, "error_samples": error_samples,
            "connections": len(claims.conns)}  # fmt: skip


async def outcome_wait(spec: dict[str, Any]) -> dict[str, Any]:
    """Waits for the outcome of each job in ``ids`` (``GET …/jobs/{id}?wait_ms=…``), one request on a connection
    of its own per job. Prints ``ready`` once started and begins when a line arrives on stdin; prints ``sent``
    once every request is written; then records each answer (``[id, http status, job status, result, error,
    when in ms of time.monotonic()]``, system-wide on Linux) and prints its result when every waiter has been
    answered, or when a line arrives on stdin again (or after ``seconds``). Lean as ``longpoll`` is."""
    host, port, queue = spec["host"], spec["port"], spec["queue"]
    base, query = f"/api/v1/queues/{queue}/jobs/", f"?wait_ms={spec['wait_ms']}"
    answers: list[tuple[str, int, str | None, Any, Any, float]] = []
    errors = 0
    ids: list[str] = spec["ids"]
    waits = _OneRequestEach(host, port, len(ids))
    all_answered = trio.Event()

    async def wait_for(job_id: str) -> None:
        nonlocal errors
        conn = await waits.send(HTTPConnection.encode_for(host, port, "GET", f"{base}{job_id}{query}"))
        try:
            status, reply = await conn.read_response()
        except (OSError, trio.BrokenResourceError, ResponseError):
            errors += 1
            return
        job = orjson.loads(reply) if status == 200 else {}
        answers.append((job_id, status, job.get("status"), job.get("result"), job.get("error"), _now_ms()))
        if len(answers) == len(ids):
            all_answered.set()

    async def until_answered(cancel: trio.CancelScope) -> None:
        await all_answered.wait()
        cancel.cancel()

    start = await _ready_then_go()
    with trio.move_on_after(spec["seconds"]):
        async with trio.open_nursery() as nursery:
            for job_id in ids:
                nursery.start_soon(wait_for, job_id)
            await waits.say_sent(start)
            nursery.start_soon(until_answered, nursery.cancel_scope)
            await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()
    await waits.close()
    return {"answers": answers, "errors": errors, "connections": len(waits.conns)}


KINDS = {
    "get_loop": get_loop,
    "submit": submit,
    "cycle": cycle,
    "requests": requests,
    "longpoll": longpoll,
    "outcome_wait": outcome_wait,
}


def main() -> None:
    # A spec too long for one command-line argument (the other routes' request lists) comes in a file: @path.
    arg = sys.argv[1]
    if arg.startswith("@"):
        with open(arg[1:]) as f:
            arg = f.read()
    spec = json.loads(arg)
    result = trio.run(KINDS[spec["kind"]], spec)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
