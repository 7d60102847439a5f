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
import uuid

import attrs
import httpx
import trio

KEY = {"X-API-Key": "dev-key"}
# Far above the server's own store timeouts (connect 5 s, pool wait 10 s, command 10 s): a request that
# takes longer than this hangs, which the invariants forbid.
CLIENT_TIMEOUT = 40.0


@attrs.define
class Books:
    attempts: dict[str, str] = attrs.Factory(dict)  # token -> "acked" | "unknown"
    acked: dict[str, str] = attrs.Factory(dict)  # token -> job id
    deliveries: dict[str, list[str]] = attrs.Factory(lambda: collections.defaultdict(list))  # id -> leases
    completed_by: dict[str, set[str]] = attrs.Factory(lambda: collections.defaultdict(set))  # id -> leases
    failed_leases: set[str] = attrs.Factory(set)
    lost_leases: set[str] = attrs.Factory(set)  # 409 on complete: the lease had expired
    abandoned_leases: set[str] = attrs.Factory(set)  # complete never confirmed
    responses: collections.Counter = attrs.Factory(collections.Counter)  # (operation, status or error)


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
    ) -> None:
        self.url, self.queue = url, queue
        self.submitters, self.workers, self.batch = submitters, workers, batch
        self.fail_every, self.pause = fail_every, pause
        self.books = Books()
        self._submitting = True
        self._cancel = trio.CancelScope()
        self._counter = itertools.count()

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
            tokens = [uuid.uuid4().hex for _ in range(self.batch)]
            for token in tokens:
                self.books.attempts[token] = "unknown"
            jobs = [{"payload": {"token": token, "n": next(self._counter)}} for token in tokens]
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

    async def _worker(self, client: httpx.AsyncClient, name: str) -> None:
        path = f"/api/v1/queues/{self.queue}/jobs"
        while True:
            r = await self._request(
                client, "claim", "POST", path + "/claim", json={"count": 5, "block_ms": 500, "worker": name}
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
            for job in jobs:
                lease = job["lease_id"]
                await trio.sleep(0.005)  # the work
                if self.fail_every and job["payload"]["n"] % self.fail_every == 0 and job["retries"] == 0:
                    await self._finish(client, job, lease, "fail", {"lease_id": lease, "error": "planned"})
                else:
                    await self._finish(client, job, lease, "complete", {"lease_id": lease, "result": {"ok": 1}})

    async def _finish(self, client: httpx.AsyncClient, job: dict, lease: str, op: str, body: dict) -> None:
        path = f"/api/v1/queues/{self.queue}/jobs/{job['id']}/{op}"
        for _ in range(8):
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
        """Waits until nothing is pending, claimed or scheduled (stranded leases expire and are redone first)."""
        async with httpx.AsyncClient(base_url=self.url, headers=KEY, timeout=CLIENT_TIMEOUT) as client:
            with trio.fail_after(within):
                while True:
                    try:
                        info = (await client.get(f"/api/v1/queues/{self.queue}")).json()
                    except (httpx.TransportError, ValueError):
                        info = {}
                    if info.get("pending") == 0 and info.get("claimed") == 0 and info.get("scheduled") == 0:
                        return
                    await trio.sleep(0.2)

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
