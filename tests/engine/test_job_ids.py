"""Job ids: UUIDv7, made one by one or a batch at a time, always in creation order and never twice."""

from __future__ import annotations

import re
import time
import uuid

from starq.server.engine.models import JOB_ID_PATTERN, new_job_id, new_job_ids


def test_ids_are_uuid7_in_creation_order_across_single_and_batch_calls() -> None:
    # More than 4,096 in one call: the per-millisecond counter runs over into the next millisecond.
    ids = [new_job_id(), *new_job_ids(5000), new_job_id(), *new_job_ids(3), *new_job_ids(1)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        assert re.fullmatch(JOB_ID_PATTERN, job_id)
        assert uuid.UUID(job_id).version == 7


def test_an_id_carries_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    (job_id,) = new_job_ids(1)
    made_ms = int(job_id.replace("-", "")[:12], 16)
    # At most a few ms ahead: a burst earlier in the process may have run the counter into later milliseconds.
    assert before <= made_ms <= time.time_ns() // 1_000_000 + 10


def test_random_bits_differ_between_ids_of_one_call() -> None:
    tails = {job_id[-12:] for job_id in new_job_ids(100)}
    assert len(tails) == 100
