"""A bounded load with exactly-once bookkeeping, and the invariants checked after a fault.

Submitters send jobs whose payload carries a unique token, one per attempt; workers claim, "work" briefly,
and complete (or, for some jobs, fail once so they are retried), retrying a complete whose outcome is unknown
with the same lease (safe: the server answers a repeat with 200). Everything is written down in ``Books``.

After the fault has struck and the load drained, ``verify`` reads the queue's truth through the API and
asserts what Starq promises:

- every job acknowledged with a 2xx exists and ended completed: none lost;
- no submit attempt produced two jobs (writes are idempotent even when the store link fails), and every job
  comes from an attempt that was made;
- each job was completed under exactly one lease, and never delivered again after that completion: a job
  was delivered twice only when its earlier lease ended without a completion (failed by the worker, lost
  to expiry, or its claim's answer never arrived);
- the queue's counters equal the jobs actually listed in each status;
- no request was answered 500, and none hung past the client's timeout.
"""

from __future__ import annotations

import collections
import itertools
import random
import uuid

import attrs
import httpx
import trio

KEY = {"X-API-Key": "dev-key"}
# Far above the server's own store timeouts (connect 5 s, pool wait 10 s, command 10 s): a request that
# takes longer than this hangs, which the invariants forbid.
CLIENT_TIMEOUT = 40.0


class NotDrained(AssertionError):
    """The queue still had work, or a finish was still unanswered, when the load should have drained."""


@attrs.define
class Books:
    attempts: dict[str, str] = attrs.Factory(dict)  # token -> "acked" | "unknown"
    acked: dict[str, str] = attrs.Factory(dict)  # token -> job id
    deliveries: dict[str, list[str]] = attrs.Factory(lambda: collections.defaultdict(list))  # id -> leases
    delivered_tokens: dict[str, str] = attrs.Factory(dict)  # id -> the token its payload carried
    completed_by: dict[str, set[str]] = attrs.Factory(lambda: collections.defaultdict(set))  # id -> leases
    failed_leases: set[str] = attrs.Factory(set)
    lost_leases: set[str] = attrs.Factory(set)  # 409 on complete: the lease had expired
    abandoned_leases: set[str] = attrs.Factory(set)  # complete never confirmed
    responses: collections.Counter = attrs.Factory(collections.Counter)  # (operation, status or error)


@attrs.frozen
class Ledger:
    """What the books alone say once the load drained (``Load.ledger``): no listing of the queue is needed, so it
    holds for a queue whose finished records are removed (a short retention) while the load runs."""

    acked: int  # submits answered 2xx (one per job)
    unknown: int  # submit attempts with no answer or a 503: outcome unknown
    unknown_stored: int  # of those, jobs that were stored all the same (a worker got them)
    completed: int  # acknowledged jobs whose completion was answered 200
    lost: list[str]  # acknowledged jobs never completed: must be empty
    stored_twice: list[str]  # tokens that reached workers under two job ids: must be empty
    deliveries: int
    delivered_twice: int  # deliveries after the first, each after a lease that ended without a completion:
    delivered_twice_after_fail: int  # the worker failed the job on purpose (a retry)
    delivered_twice_after_lease_expiry: int  # its lease expired, or the claim's answer never arrived
    delivered_after_completion: list[str]  # must be empty
    completed_under_two_leases: list[str]  # must be empty
    broken_answers: dict  # 500s and client timeouts: must be empty

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.stored_twice
            or self.delivered_after_completion
            or self.completed_under_two_leases
            or self.broken_answers
        )


@attrs.frozen
class Summary:
    attempts: int
    acked: int
    unknown: int
    jobs: int
    deliveries: int
    duplicate_deliveries: int
    duplicates_after_worker_fail: int
    duplicates_after_lost_lease: int
    unconfirmed_completions: int
    responses: dict


class Load:
    """Submitters and workers against ``url``'s queue ``queue``; run it with ``nursery.start_soon(load.run)``."""

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        submitters: int = 3,
        workers: int = 4,
        batch: int = 1,
        fail_every: int = 7,
        pause: float = 0.01,
        delay_every: int = 0,
        block_ms: tuple[int, int] = (500, 500),
        finish_tries: int | None = 8,
        max_backlog: int = 0,
    ) -> None:
        """``delay_every``: every n-th job is submitted with a delay of up to 2 s (0: none); ``block_ms``: the
        range a claim's long-poll is drawn from; ``finish_tries``: how often a complete or fail answered 503 (or
        not at all) is tried again before its lease is given up (None: until it is answered or the load stops,
        so that a completion's outcome is never left unknown); ``max_backlog``: submitters wait while more acknowledged
        jobs than this are not completed yet (0: no bound)."""
        self.url, self.queue = url, queue
        self.submitters, self.workers, self.batch = submitters, workers, batch
        self.fail_every, self.pause = fail_every, pause
        self.delay_every, self.block_ms, self.finish_tries = delay_every, block_ms, finish_tries
        self.max_backlog = max_backlog
        self._random = random.Random(queue)
        self.books = Books()
        self._submitting = True
        self._cancel = trio.CancelScope()
        self._counter = itertools.count()
        self._finishing = 0  # completes and fails sent and not answered yet

    def probe(self) -> dict:
        """A payload for a submit made outside the load (a probe during a fault), written in the books."""
        token = uuid.uuid4().hex
        self.books.attempts[token] = "unknown"
        return {"token": token, "n": next(self._counter)}

    def stop_submitting(self) -> None:
        self._submitting = False

    def stop(self) -> None:
        self._cancel.cancel()

    async def run(self) -> None:
        with self._cancel:
            async with (
                httpx.AsyncClient(
                    base_url=self.url, headers=KEY, timeout=CLIENT_TIMEOUT, limits=httpx.Limits(max_connections=64)
                ) as client,
                trio.open_nursery() as nursery,
            ):
                for _ in range(self.submitters):
                    nursery.start_soon(self._submitter, client)
                for i in range(self.workers):
                    nursery.start_soon(self._worker, client, f"w{i}")

    async def _request(self, client: httpx.AsyncClient, op: str, method: str, path: str, **kw) -> httpx.Response | None:
        try:
            r = await client.request(method, path, **kw)
        except httpx.TimeoutException:
            self.books.responses[(op, "timeout")] += 1
            return None
        except httpx.TransportError as exc:
            self.books.responses[(op, type(exc).__name__)] += 1
            return None
        self.books.responses[(op, r.status_code)] += 1
        return r

    async def _submitter(self, client: httpx.AsyncClient) -> None:
        while self._submitting:
            if self.max_backlog and len(self.books.acked) - len(self.books.completed_by) > self.max_backlog:
                await trio.sleep(0.05)  # the workers are behind: a steady state, not a growing backlog
                continue
            tokens = [uuid.uuid4().hex for _ in range(self.batch)]
            for token in tokens:
                self.books.attempts[token] = "unknown"
            jobs = [self._job(token) for token in tokens]
            body = {"jobs": jobs} if self.batch > 1 else jobs[0]
            r = await self._request(client, "submit", "POST", f"/api/v1/queues/{self.queue}/jobs", json=body)
            if r is not None and r.status_code == 201:
                for token, job in zip(tokens, r.json()["jobs"], strict=True):
                    self.books.attempts[token] = "acked"
                    self.books.acked[token] = job["id"]
            elif r is not None and r.status_code not in (503,):
                raise AssertionError(f"submit answered {r.status_code}: {r.text}")
            else:
                await trio.sleep(0.1)  # the store is out: do not spin
            await trio.sleep(self.pause)

    def _job(self, token: str) -> dict:
        n = next(self._counter)
        job: dict = {"payload": {"token": token, "n": n}}
        if self.delay_every and n % self.delay_every == 0:
            job["delay"] = round(self._random.uniform(0.1, 2.0), 2)
        return job

    async def _worker(self, client: httpx.AsyncClient, name: str) -> None:
        path = f"/api/v1/queues/{self.queue}/jobs"
        while True:
            block_ms = self._random.randint(*self.block_ms)
            r = await self._request(
                client, "claim", "POST", path + "/claim", json={"count": 5, "block_ms": block_ms, "worker": name}
            )
            if r is None or r.status_code != 200:
                if r is not None and r.status_code != 503:
                    raise AssertionError(f"claim answered {r.status_code}: {r.text}")
                await trio.sleep(0.1)
                continue
            jobs = r.json()["jobs"]
            # Every job of the batch is written down on arrival, not when its turn comes: a later job's lease
            # can expire while earlier ones are finished, and its redelivery must be seen as coming after.
            for job in jobs:
                self.books.deliveries[job["id"]].append(job["lease_id"])
                self.books.delivered_tokens[job["id"]] = job["payload"]["token"]
            for job in jobs:
                lease = job["lease_id"]
                await trio.sleep(0.005)  # the work
                if self.fail_every and job["payload"]["n"] % self.fail_every == 0 and job["retries"] == 0:
                    await self._finish(client, job, lease, "fail", {"lease_id": lease, "error": "planned"})
                else:
                    await self._finish(client, job, lease, "complete", {"lease_id": lease, "result": {"ok": 1}})

    async def _finish(self, client: httpx.AsyncClient, job: dict, lease: str, op: str, body: dict) -> None:
        self._finishing += 1
        try:
            await self._finish_once(client, job, lease, op, body)
        finally:
            self._finishing -= 1

    async def _finish_once(self, client: httpx.AsyncClient, job: dict, lease: str, op: str, body: dict) -> None:
        path = f"/api/v1/queues/{self.queue}/jobs/{job['id']}/{op}"
        tries = itertools.count() if self.finish_tries is None else range(self.finish_tries)
        for _ in tries:
            r = await self._request(client, op, "PUT", path, json=body)
            if r is not None and r.status_code == 200:
                if op == "complete":
                    self.books.completed_by[job["id"]].add(lease)
                else:
                    self.books.failed_leases.add(lease)
                return
            if r is not None and r.status_code == 409:
                self.books.lost_leases.add(lease)
                return
            if r is not None and r.status_code != 503:
                raise AssertionError(f"{op} answered {r.status_code}: {r.text}")
            await trio.sleep(0.3)
        self.books.abandoned_leases.add(lease)

    # -- after the fault ------------------------------------------------------------------------------

    async def drained(self, within: float) -> None:
        """Waits until nothing is pending, claimed or scheduled (stranded leases expire and are redone first).

        Raises:
            NotDrained: still not so after ``within`` seconds; it says what was left.
        """
        info: dict = {}
        async with httpx.AsyncClient(base_url=self.url, headers=KEY, timeout=CLIENT_TIMEOUT) as client:
            with trio.move_on_after(within):
                while True:
                    try:
                        info = (await client.get(f"/api/v1/queues/{self.queue}")).json()
                    except (httpx.TransportError, ValueError):
                        info = {}
                    idle = info.get("pending") == 0 and info.get("claimed") == 0 and info.get("scheduled") == 0
                    # A complete the store ran but did not answer yet is still being retried: wait for it.
                    if idle and not self._finishing:
                        return
                    await trio.sleep(0.2)
            left = {s: info.get(s) for s in ("pending", "claimed", "scheduled", "failed")}
            samples = {}
            for status in ("pending", "claimed", "scheduled"):
                if info.get(status):
                    page = await client.get(f"/api/v1/queues/{self.queue}/jobs", params={"status": status, "count": 5})
                    samples[status] = page.json().get("jobs", []) if page.status_code == 200 else page.text
        raise NotDrained(f"not drained after {within} s: {left}, {self._finishing} completes or fails still "
                         f"unanswered; some of the jobs left: {samples}")  # fmt: skip

    def ledger(self) -> Ledger:
        """The exactly-once ledger from the books (call it after ``drained``); see ``Ledger``."""
        books = self.books
        acked_ids = set(books.acked.values())
        by_token: dict[str, set[str]] = collections.defaultdict(set)
        for job_id, token in books.delivered_tokens.items():
            by_token[token].add(job_id)
        twice = after_fail = after_expiry = 0
        after_completion, two_winners = [], []
        for job_id, leases in books.deliveries.items():
            winners = books.completed_by.get(job_id, set())
            if len(winners) > 1:
                two_winners.append(job_id)
            if winners and leases[-1] not in winners:
                after_completion.append(job_id)
            for earlier in leases[:-1]:
                twice += 1
                if earlier in books.failed_leases:
                    after_fail += 1
                else:
                    after_expiry += 1
        return Ledger(
            acked=len(acked_ids),
            unknown=sum(1 for s in books.attempts.values() if s == "unknown"),
            unknown_stored=sum(1 for t, s in books.attempts.items() if s == "unknown" and by_token.get(t)),
            completed=sum(1 for job_id in acked_ids if books.completed_by.get(job_id)),
            lost=sorted(job_id for job_id in acked_ids if not books.completed_by.get(job_id)),
            stored_twice=sorted(t for t, ids in by_token.items() if len(ids) > 1),
            deliveries=sum(len(v) for v in books.deliveries.values()),
            delivered_twice=twice,
            delivered_twice_after_fail=after_fail,
            delivered_twice_after_lease_expiry=after_expiry,
            delivered_after_completion=sorted(after_completion),
            completed_under_two_leases=sorted(two_winners),
            broken_answers={f"{op} {st}": n for (op, st), n in books.responses.items() if st in (500, "timeout")},
        )

    async def verify(self) -> Summary:
        """Asserts the invariants (see the module docstring) and returns what happened."""
        books = self.books
        async with httpx.AsyncClient(base_url=self.url, headers=KEY, timeout=CLIENT_TIMEOUT) as client:
            info = (await client.get(f"/api/v1/queues/{self.queue}")).json()
            jobs: list[dict] = []
            cursor = ""
            while True:
                page = (
                    await client.get(f"/api/v1/queues/{self.queue}/jobs", params={"count": 500, "cursor": cursor})
                ).json()
                jobs += page["jobs"]
                if not page["has_more"]:
                    break
                cursor = page["cursor"]
        by_id = {job["id"]: job for job in jobs}
        assert len(by_id) == len(jobs), "a job was listed twice"

        # Nothing acknowledged is lost; everything ended completed.
        for token, job_id in books.acked.items():
            assert job_id in by_id, f"acknowledged job {job_id} is missing"
            assert by_id[job_id]["payload"]["token"] == token
        assert {job["status"] for job in jobs} <= {"completed"}, collections.Counter(j["status"] for j in jobs)

        # One job per attempt at most, and only from attempts that were made.
        tokens = collections.Counter(job["payload"]["token"] for job in jobs)
        doubled = [t for t, n in tokens.items() if n > 1]
        assert not doubled, f"{len(doubled)} submit attempt(s) produced two jobs"
        assert set(tokens) <= set(books.attempts), "a job came from no attempt"

        # Completed under one lease; delivered again only after a lease that ended without completion.
        duplicates = after_fail = after_lost = unconfirmed = 0
        for job_id, job in by_id.items():
            leases = books.deliveries.get(job_id, [])
            winners = books.completed_by.get(job_id, set())
            assert len(winners) <= 1, f"job {job_id} was completed under {len(winners)} leases"
            if not winners:
                unconfirmed += 1
            if winners:
                assert leases[-1] in winners, f"job {job_id} was delivered again after it was completed"
            assert job["retries"] >= len(leases) - 1
            for earlier in leases[:-1]:
                duplicates += 1
                assert earlier not in winners
                if earlier in books.failed_leases:
                    after_fail += 1
                else:
                    after_lost += 1

        # The counters are the truth.
        statuses = collections.Counter(job["status"] for job in jobs)
        for status in ("pending", "scheduled", "claimed", "completed", "failed", "cancelled"):
            assert info[status] == statuses.get(status, 0), (status, info[status], statuses.get(status, 0))

        # No 500, no hang.
        bad = {k: v for k, v in books.responses.items() if k[1] == 500 or k[1] == "timeout"}
        assert not bad, f"answers that break the contract: {bad}"
        return Summary(
            attempts=len(books.attempts),
            acked=len(books.acked),
            unknown=sum(1 for s in books.attempts.values() if s == "unknown"),
            jobs=len(jobs),
            deliveries=sum(len(v) for v in books.deliveries.values()),
            duplicate_deliveries=duplicates,
            duplicates_after_worker_fail=after_fail,
            duplicates_after_lost_lease=after_lost,
            unconfirmed_completions=unconfirmed,
            responses={f"{op} {status}": n for (op, status), n in sorted(books.responses.items(), key=str)},
        )
