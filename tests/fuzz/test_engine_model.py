"""Property-based test of the engine against a simple model of one queue.

Hypothesis drives random sequences of submit (now or scheduled, with priorities, colliding payloads for dedupe,
and job keys on a queue with key_concurrency 1), claim, complete, fail, extend, release, lease expiry, cancel
(claimed jobs too), promote, retry and retry-dead against a real store, with right and wrong leases. The model says
what each step must return or raise; after every step the engine's counts, and every job's status and retries,
must equal the model's.

The state machine runs in a worker thread (Hypothesis is synchronous) and reaches the engine, which lives in
the test's Trio loop, through ``trio.from_thread.run``.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import ClassVar

import attrs
import orjson
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from starq.server.engine.engine import Engine, dedupe_hash
from starq.server.engine.models import STATUSES, JobOptions, NewJob, new_job_id
from starq.worker_kit.errors import InvalidState, JobCancelled, JobNotFound, LeaseLost, NotClaimed, StarqError

MAX_RETRIES = 1
STALE = "stale-lease-0"


@attrs.define
class ModelJob:
    id: str
    priority: int
    hash: str
    status: str
    retries: int = 0
    lease: str = ""
    done_lease: str = ""  # the lease under which the last outcome was recorded
    done_as: str = ""  # "complete", "fail" or "release"
    key: str | None = None
    active: bool = False  # it holds its key's one slot (key_concurrency 1)


class QueueModel:
    """What one queue must look like: each job's state, the FIFO of pending jobs per priority, dedupe."""

    def __init__(self, dedupe: bool) -> None:
        self.dedupe = dedupe
        self.jobs: dict[str, ModelJob] = {}
        self.lines: dict[int, deque[str]] = {p: deque() for p in range(10)}
        self.hashes: dict[str, str] = {}  # payload hash -> job id, for jobs dedupe still knows
        self.key_lines: dict[str, deque[str]] = {}  # jobs waiting for their key's slot, in order
        self.key_held: dict[str, bool] = {}  # whether a job holds the key's one slot

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for job in self.jobs.values():
            out[job.status] += 1
        return out

    def make_pending(self, job: ModelJob) -> None:
        """Back in line: a job that holds its key's slot keeps it."""
        job.status, job.lease = "pending", ""
        self.lines[job.priority].append(job.id)

    def enqueue(self, job: ModelJob) -> None:
        """A job entering the line: through its key's gate."""
        if job.key is not None and not job.active:
            if self.key_held.get(job.key):
                job.status, job.lease = "pending", ""
                self.key_lines.setdefault(job.key, deque()).append(job.id)
                return
            self.key_held[job.key] = job.active = True
        self.make_pending(job)

    def finish(self, job: ModelJob, status: str) -> None:
        """The job is done (completed, dead or cancelled): its key's slot passes to the next of its line."""
        job.status, job.lease = status, ""
        if status != "completed":
            self.drop_hash(job)
        if job.active:
            job.active = False
            self.key_held[job.key] = False  # type: ignore[index]
            waiting = self.key_lines.get(job.key)  # type: ignore[arg-type]
            if waiting:
                self.enqueue(self.jobs[waiting.popleft()])

    def drop_hash(self, job: ModelJob) -> None:
        if self.hashes.get(job.hash) == job.id:
            del self.hashes[job.hash]

    def check_lease(self, job: ModelJob, lease: str, op: str) -> type[StarqError] | str | None:
        """None when the caller holds the job; "repeat" for a repeated outcome; else the error to expect."""
        if job.status != "claimed":
            if lease and lease == job.done_lease and op == job.done_as:
                return "repeat"
            return JobCancelled if job.status == "cancelled" else NotClaimed
        if lease and lease != job.lease:
            return LeaseLost
        return None

    def dead_or_back(self, job: ModelJob) -> None:
        """A claimed attempt ended without success: back in line, or dead when attempts are exhausted."""
        if job.retries < MAX_RETRIES:
            job.retries += 1
            self.make_pending(job)
        else:
            self.finish(job, "failed")


class EngineMachine(RuleBasedStateMachine):
    engine: ClassVar[Engine]  # set by the test before the machine runs

    def call(self, fn, *args):
        return trio.from_thread.run(fn, *args)

    def expect_error(self, expected: type[StarqError], fn, *args) -> None:
        try:
            self.call(fn, *args)
        except StarqError as exc:
            assert isinstance(exc, expected), f"expected {expected.__name__}, got {type(exc).__name__}: {exc}"
        else:
            raise AssertionError(f"expected {expected.__name__}")

    @initialize(dedupe=st.booleans())
    def create(self, dedupe: bool) -> None:
        self.queue = f"m-{uuid.uuid4().hex[:10]}"
        self.model = QueueModel(dedupe)
        self.old_leases: list[str] = [STALE]
        self.call(
            self.engine.create_queue,
            self.queue,
            {
                "max_retries": MAX_RETRIES,
                "claim_timeout": 600,
                "retry_delay": 0,
                "dedupe": dedupe,
                "key_concurrency": 1,
            },
        )

    # -- picking jobs ---------------------------------------------------------------------------------

    def _pick(self, data, status: str | None = None) -> ModelJob | None:
        jobs = [j for j in self.model.jobs.values() if status is None or j.status == status]
        return data.draw(st.sampled_from(jobs)) if jobs else None

    def _pick_held(self, data) -> ModelJob | None:
        """Mostly a claimed job (the interesting case for outcomes), sometimes any job."""
        if any(j.status == "claimed" for j in self.model.jobs.values()) and data.draw(st.integers(0, 3)):
            return self._pick(data, "claimed")
        return self._pick(data)

    def _lease_for(self, data, job: ModelJob) -> str:
        options = ["", STALE, *self.old_leases[-3:]]
        if job.lease:
            options += [job.lease, job.lease]  # the right lease most often
        return data.draw(st.sampled_from(options))

    # -- rules ----------------------------------------------------------------------------------------

    @rule(
        items=st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 2), st.sampled_from([None, None, "a", "b"])),
            min_size=1,
            max_size=3,
        ),
        later=st.booleans(),
    )
    def submit(self, items, later: bool) -> None:
        run_at = int((time.time() + 3600) * 1000) if later else 0
        new, ids, keys = [], [], []
        for value, priority, key in items:
            payload = {"v": value}
            new.append(
                NewJob(
                    payload=orjson.dumps(payload).decode(),
                    priority=priority,
                    run_at_ms=run_at,
                    dedupe_hash=dedupe_hash(payload),
                    options=JobOptions(key=key).to_json(),
                )
            )
            ids.append(new_job_id())
            keys.append(key)
        replies = self.call(self.engine.submit, self.queue, new, ids)
        model = self.model
        for job_id, job, key, reply in zip(ids, new, keys, replies, strict=True):
            known = model.hashes.get(job.dedupe_hash) if model.dedupe else None
            if known is not None:
                assert reply.skipped and reply.id == known and reply.status == model.jobs[known].status
                continue
            assert not reply.skipped and reply.id == job_id
            entry = ModelJob(job_id, job.priority, job.dedupe_hash if model.dedupe else "", "scheduled", key=key)
            model.jobs[job_id] = entry
            if model.dedupe:
                model.hashes[job.dedupe_hash] = job_id
            if later:
                assert reply.status == "scheduled"
            else:
                assert reply.status == "pending"
                model.enqueue(entry)

    @rule(count=st.integers(1, 3))
    def claim(self, count: int) -> None:
        got = self.call(self.engine.claim, self.queue, count, "w")
        expected: list[str] = []
        for p in range(9, -1, -1):
            while self.model.lines[p] and len(expected) < count:
                expected.append(self.model.lines[p].popleft())
        assert [j.id for j in got] == expected
        for job in got:
            entry = self.model.jobs[job.id]
            assert job.status == "claimed" and job.retries == entry.retries and job.lease_id
            entry.status, entry.lease = "claimed", job.lease_id

    @rule(data=st.data())
    def complete(self, data) -> None:
        job = self._pick_held(data)
        if job is None:
            return
        lease = self._lease_for(data, job)
        verdict = self.model.check_lease(job, lease, "complete")
        if isinstance(verdict, type):
            self.expect_error(verdict, self.engine.complete, self.queue, job.id, lease, "{}")
            return
        assert self.call(self.engine.complete, self.queue, job.id, lease, '{"ok":1}') == "completed"
        if verdict is None:
            job.done_lease, job.done_as = job.lease, "complete"
            self.old_leases.append(job.lease)
            self.model.finish(job, "completed")

    @rule(data=st.data(), retry=st.booleans())
    def fail(self, data, retry: bool) -> None:
        job = self._pick_held(data)
        if job is None:
            return
        lease = self._lease_for(data, job)
        verdict = self.model.check_lease(job, lease, "fail")
        if isinstance(verdict, type):
            self.expect_error(verdict, self.engine.fail, self.queue, job.id, lease, "boom", retry)
            return
        status, retries = self.call(self.engine.fail, self.queue, job.id, lease, "boom", retry)
        if verdict is None:
            job.done_lease, job.done_as = job.lease, "fail"
            self.old_leases.append(job.lease)
            if retry:
                self.model.dead_or_back(job)
            else:
                self.model.finish(job, "failed")
        assert (status, retries) == (job.status, job.retries)

    @rule(data=st.data())
    def extend(self, data) -> None:
        job = self._pick_held(data)
        if job is None:
            return
        lease = self._lease_for(data, job)
        verdict = self.model.check_lease(job, lease, "extend")
        if isinstance(verdict, type):
            self.expect_error(verdict, self.engine.extend, self.queue, job.id, lease, 60)
            return
        assert self.call(self.engine.extend, self.queue, job.id, lease, 60)

    @rule(data=st.data())
    def expire(self, data) -> None:
        """The lease of a claimed job runs out; the maintenance tick reclaims it."""
        job = self._pick(data, "claimed")
        if job is None:
            return
        self.call(self.engine.extend, self.queue, job.id, job.lease, 0.001)
        time.sleep(0.005)
        # Any server process running on the test store may reclaim it first (its maintenance loop ticks every
        # queue): the outcome is the same, so only the state is checked, not who reclaimed it.
        ticked = self.call(self.engine.tick, self.queue)
        assert ticked.promoted == 0 and ticked.reclaimed in (0, 1)
        self.old_leases.append(job.lease)
        self.model.dead_or_back(job)

    @rule(data=st.data())
    def release(self, data) -> None:
        job = self._pick_held(data)
        if job is None:
            return
        lease = self._lease_for(data, job)
        verdict = self.model.check_lease(job, lease, "release")
        if isinstance(verdict, type):
            self.expect_error(verdict, self.engine.release, self.queue, job.id, lease)
            return
        status = self.call(self.engine.release, self.queue, job.id, lease)
        if verdict is None:
            job.done_lease, job.done_as = job.lease, "release"
            self.old_leases.append(job.lease)
            self.model.make_pending(job)  # no attempt counted; it keeps its key's slot
        assert status == job.status

    @rule(data=st.data())
    def cancel(self, data) -> None:
        job = self._pick(data)
        if job is None:
            return
        if job.status not in ("pending", "scheduled", "claimed"):
            self.expect_error(InvalidState, self.engine.cancel, self.queue, job.id)
            return
        assert self.call(self.engine.cancel, self.queue, job.id) == "cancelled"
        if job.status == "pending":
            if job.id in self.model.lines[job.priority]:
                self.model.lines[job.priority].remove(job.id)
            else:
                self.model.key_lines[job.key].remove(job.id)  # type: ignore[index]
        if job.status == "claimed":
            self.old_leases.append(job.lease)
        self.model.finish(job, "cancelled")

    @rule(data=st.data())
    def promote(self, data) -> None:
        job = self._pick(data)
        if job is None:
            return
        if job.status != "scheduled":
            self.expect_error(InvalidState, self.engine.promote, self.queue, job.id)
            return
        assert self.call(self.engine.promote, self.queue, job.id) == "pending"
        self.model.enqueue(job)

    @rule(data=st.data())
    def retry(self, data) -> None:
        job = self._pick(data)
        if job is None:
            return
        if job.status not in ("failed", "cancelled"):
            self.expect_error(InvalidState, self.engine.retry, self.queue, job.id)
            return
        assert self.call(self.engine.retry, self.queue, job.id) == "pending"
        self._revive(job)

    @precondition(lambda self: any(j.status == "failed" for j in self.model.jobs.values()))
    @rule()
    def retry_dead(self) -> None:
        dead = sorted(j.id for j in self.model.jobs.values() if j.status == "failed")  # ids sort by creation
        assert self.call(self.engine.retry_dead, self.queue) == len(dead)
        for job_id in dead:
            self._revive(self.model.jobs[job_id])

    def _revive(self, job: ModelJob) -> None:
        job.retries, job.done_lease, job.done_as = 0, "", ""
        if job.hash and job.hash not in self.model.hashes:
            self.model.hashes[job.hash] = job.id
        self.model.enqueue(job)

    @rule()
    def unknown_job(self) -> None:
        self.expect_error(JobNotFound, self.engine.get_job, self.queue, new_job_id())

    # -- invariants -----------------------------------------------------------------------------------

    @invariant()
    def engine_equals_model(self) -> None:
        if not hasattr(self, "model"):
            return
        info = self.call(self.engine.queue_info, self.queue)
        assert info.counts == self.model.counts()
        page = self.call(self.engine.list_jobs, self.queue, "", 500, "")
        assert not page.has_more
        seen = {job.id: (job.status, job.retries) for job in page.jobs}
        assert seen == {j.id: (j.status, j.retries) for j in self.model.jobs.values()}


async def test_engine_behaves_like_the_model(engine):
    EngineMachine.engine = engine
    config = settings(
        max_examples=40,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    await trio.to_thread.run_sync(lambda: run_state_machine_as_test(EngineMachine, settings=config))
