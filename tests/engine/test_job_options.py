"""Per-job options in the engine (unique keys, timeout, max_retries, tags) and the operations of flow control
(release, promote, purge by status)."""

from __future__ import annotations

from datetime import datetime

import pytest
import trio

from engine.helpers import all_jobs, assert_counts_true, make_queue, make_unticked_queue, now_ms, submit
from starq.worker_kit.errors import InvalidState, LeaseLost, NotClaimed


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def test_a_unique_key_held_by_an_unfinished_job_skips_the_submit(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=0)
    (first,) = await submit(engine, queue_name, {"n": 1}, unique_key="report-42")
    (again, other) = await submit(engine, queue_name, {"n": 2}, {"n": 3}, unique_key="report-42")
    assert (again.id, again.skipped, other.id, other.skipped) == (first.id, True, first.id, True)
    (job,) = await engine.claim(queue_name, 5)
    (still,) = await submit(engine, queue_name, {"n": 4}, unique_key="report-42")
    assert still.skipped and still.id == first.id  # claimed is unfinished too
    await engine.complete(queue_name, job.id, job.lease_id)
    (fresh,) = await submit(engine, queue_name, {"n": 5}, unique_key="report-42")
    assert not fresh.skipped and fresh.id != first.id
    (job,) = await engine.claim(queue_name, 5)
    await engine.fail(queue_name, job.id, job.lease_id, "boom")  # dead-lettered: finished, the key is free
    assert not (await submit(engine, queue_name, {"n": 6}, unique_key="report-42"))[0].skipped
    stored = await engine.get_job(queue_name, fresh.id)
    assert stored.fields["unique_key"] == "report-42" and stored.fields["unique_for"] is None


async def test_unique_for_is_a_window_from_submission_whatever_the_status(engine, queue_name):
    await make_unticked_queue(engine, await _raw(engine), queue_name)
    (first,) = await submit(engine, queue_name, {"n": 1}, unique_key="u", unique_for=1)
    (job,) = await engine.claim(queue_name, 5)
    await engine.complete(queue_name, job.id, job.lease_id)
    (skipped,) = await submit(engine, queue_name, {"n": 2}, unique_key="u", unique_for=1)
    assert skipped.skipped and skipped.id == first.id  # completed, but within the window
    await trio.sleep(1.1)
    (late,) = await submit(engine, queue_name, {"n": 3}, unique_key="u", unique_for=1)
    assert not late.skipped
    # After the window a new job is accepted even though the last one is still pending.
    await trio.sleep(1.1)
    (next_one,) = await submit(engine, queue_name, {"n": 4}, unique_key="u", unique_for=1)
    assert not next_one.skipped
    assert (await engine.queue_info(queue_name)).counts["pending"] == 2


async def _raw(engine):
    return engine._redis


async def test_a_timeout_caps_the_lease_and_then_fails_the_attempt(engine, queue_name):
    await make_unticked_queue(engine, await _raw(engine), queue_name, claim_timeout=600, retry_delay=0, max_retries=1)
    await submit(engine, queue_name, {"slow": True}, timeout=1)
    (job,) = await engine.claim(queue_name, 1)
    assert ms(job.fields["lease_expires_at"]) - ms(job.claimed_at) == 1000  # not the queue's 10 minutes
    assert job.fields["timeout"] == 1
    capped = await engine.extend(queue_name, job.id, job.lease_id, 3600)
    assert ms(capped) == ms(job.fields["lease_expires_at"])  # 200, with the lease capped at the timeout
    await trio.sleep(1.1)
    assert (await engine.tick(queue_name)).reclaimed == 1
    shown = await engine.get_job(queue_name, job.id)
    assert shown.status == "pending" and shown.retries == 1
    assert shown.error == "timeout: attempt ran longer than 1 s"
    (job,) = await engine.claim(queue_name, 1)
    await trio.sleep(1.1)
    await engine.tick(queue_name)
    dead = await engine.get_job(queue_name, job.id)
    assert dead.status == "failed" and dead.error == "timeout: attempt ran longer than 1 s"


async def test_a_jobs_max_retries_overrides_the_queues(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=5)
    await submit(engine, queue_name, {"fragile": True}, max_retries=0)
    (job,) = await engine.claim(queue_name, 1)
    assert await engine.fail(queue_name, job.id, job.lease_id, "no") == ("failed", 0)
    await submit(engine, queue_name, {"sturdy": True}, max_retries=2)
    for retries in range(2):
        (job,) = await engine.claim(queue_name, 1)
        assert await engine.fail(queue_name, job.id, job.lease_id, "no") == ("pending", retries + 1)
    (job,) = await engine.claim(queue_name, 1)
    assert (await engine.fail(queue_name, job.id, job.lease_id, "no"))[0] == "failed"


async def test_tags_list_jobs_filtered_before_paging_and_with_a_status(engine, queue_name):
    await make_queue(engine, queue_name)
    red = [s.id for s in await submit(engine, queue_name, *({"i": i} for i in range(7)), tags=["red", "x"])]
    await submit(engine, queue_name, *({"i": i} for i in range(5)), tags=["blue"])
    await submit(engine, queue_name, *({"i": i} for i in range(3)))
    seen, cursor = [], ""
    while True:
        page = await engine.list_jobs(queue_name, count=3, cursor=cursor, tag="red")
        seen += [j.id for j in page.jobs]
        if not page.has_more:
            break
        assert len(page.jobs) == 3
        cursor = page.cursor
    assert seen == list(reversed(red))
    claimed = await engine.claim(queue_name, 2)  # the two oldest jobs: both red
    listed = await engine.list_jobs(queue_name, "claimed", 10, tag="red")
    assert {j.id for j in listed.jobs} == {j.id for j in claimed}
    assert (await engine.list_jobs(queue_name, "claimed", 10, tag="blue")).jobs == []
    assert (await engine.get_job(queue_name, red[0])).fields["tags"] == '["red","x"]'


async def test_a_search_finds_by_id_prefix_payload_or_error_case_insensitively(engine, queue_name):
    await make_queue(engine, queue_name, retry_delay=0, max_retries=0)
    subs = await submit(engine, queue_name, {"to": "Ada@Example.com"}, {"to": "bob@example.com"}, {"x": 1})
    (job,) = await engine.claim(queue_name, 1)  # the first: Ada
    await engine.fail(queue_name, job.id, job.lease_id, "SMTP Timeout while sending")
    found = lambda page: [j.id for j in page.jobs]  # noqa: E731
    assert found(await engine.list_jobs(queue_name, text="ADA@")) == [subs[0].id]
    assert found(await engine.list_jobs(queue_name, text="example.com")) == [subs[1].id, subs[0].id]
    assert found(await engine.list_jobs(queue_name, text="smtp timeout")) == [subs[0].id]
    assert found(await engine.list_jobs(queue_name, "failed", text="example")) == [subs[0].id]
    assert found(await engine.list_jobs(queue_name, text=subs[2].id[:20])) == [subs[2].id]


async def test_a_search_bounds_its_work_and_pages_on(engine, queue_name, monkeypatch):
    from starq.server.engine import engine as engine_module

    monkeypatch.setattr(engine_module, "SCAN_BUDGET", 10)
    await make_queue(engine, queue_name)
    await submit(engine, queue_name, {"needle": 1})
    await submit(engine, queue_name, *({"hay": i} for i in range(25)))
    page = await engine.list_jobs(queue_name, text="needle")
    assert page.jobs == [] and page.has_more and page.cursor  # looked at 10 jobs, found none yet
    found = []
    while page.has_more:
        page = await engine.list_jobs(queue_name, text="needle", cursor=page.cursor)
        found += page.jobs
    assert [j.payload for j in found] == ['{"needle": 1}']


async def test_release_gives_a_job_back_without_counting_an_attempt(engine, queue_name):
    await make_queue(engine, queue_name, key_concurrency=1)
    first, second = await submit(engine, queue_name, {"n": 1}, {"n": 2}, key="k")
    (job,) = await engine.claim(queue_name, 5, "w")
    assert await engine.release(queue_name, job.id, job.lease_id) == "pending"
    assert await engine.release(queue_name, job.id, job.lease_id) == "pending"  # a repeat is answered the same
    (again,) = await engine.claim(queue_name, 5)
    assert again.id == first.id and again.retries == 0  # it kept its key's turn
    with pytest.raises(LeaseLost):
        await engine.release(queue_name, again.id, job.lease_id)
    assert await engine.release(queue_name, again.id, again.lease_id, delay=30) == "scheduled"
    shown = await engine.get_job(queue_name, first.id)
    assert shown.status == "scheduled" and shown.retries == 0
    assert [h["event"] for h in shown.history][-2:] == ["claimed", "released"]
    assert "run_at" in shown.history[-1]
    assert await engine.claim(queue_name, 5) == []  # the key's turn is still the released job's
    assert await engine.promote(queue_name, first.id) == "pending"
    assert (await engine.claim(queue_name, 5))[0].id == first.id
    with pytest.raises(InvalidState):
        await engine.promote(queue_name, first.id)
    with pytest.raises(NotClaimed):
        await engine.release(queue_name, second.id, "")
    await assert_counts_true(engine, queue_name)


async def test_purge_by_status_removes_every_trace_in_chunks(engine, queue_name, raw, monkeypatch):
    from starq.server.engine import engine as engine_module

    monkeypatch.setattr(engine_module, "PURGE_CHUNK", 4)
    await make_queue(engine, queue_name, key_concurrency=1)
    await submit(engine, queue_name, *({"i": i} for i in range(9)), tags=["t"], key="k")
    await submit(engine, queue_name, *({"d": i} for i in range(3)), run_at_ms=now_ms() + 60_000, unique_key="u")
    (claimed,) = await engine.claim(queue_name, 5)
    assert await engine.purge_status(queue_name, "pending") == 8
    assert await engine.purge_status(queue_name, "scheduled") == 1  # the other two were skipped as duplicates
    counts = await assert_counts_true(engine, queue_name)
    assert (counts["pending"], counts["scheduled"], counts["claimed"]) == (0, 0, 1)
    assert [j.id for j in (await engine.list_jobs(queue_name, tag="t")).jobs] == [claimed.id]
    assert not (await submit(engine, queue_name, {"d": 9}, unique_key="u"))[0].skipped  # the key went with it
    await engine.complete(queue_name, claimed.id, claimed.lease_id)
    assert await engine.purge_status(queue_name, "completed") == 1
    prefix = f"starq:{{{queue_name}}}:"
    assert not await raw.exists([prefix + "tag:t", prefix + "kq:k"])
    assert len(await all_jobs(engine, queue_name)) == 1
