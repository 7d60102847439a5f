"""StarqClient's flow-control additions against a real ``starq serve``: job options on submit and submit_many,
queue concurrency and rate limits, release, promote, bulk actions, purge, and listing by tag and search."""

from __future__ import annotations

import inspect
from typing import Unpack, get_type_hints

import pytest

from starq.server.api import shapes
from starq.worker_kit import (
    InvalidState,
    JobCancelled,
    JobOptions,
    LeaseLost,
    NotClaimed,
    StarqClient,
    SubmitOptions,
    ValidationFailed,
)
from starq.worker_kit.protocol import JOB_OPTIONS, SUBMIT_OPTIONS

OPTIONS = {"key": "acct-1", "timeout": 30, "max_retries": 2, "tags": ["mail", "eu"]}


def test_every_method_that_takes_the_job_options_takes_them_alike():
    # Declared once, as TypedDicts in the protocol module (the CLI's options come from there too), the same as the
    # server's request schema, and taken as ``**options: Unpack[...]`` by each method: none spells them out.
    assert tuple(field.name for field in shapes.JOB_OPTIONS) == JOB_OPTIONS
    assert SUBMIT_OPTIONS[len(JOB_OPTIONS) :] == ("delay", "run_at", "depends_on", "on_dependency_failure")
    assert SUBMIT_OPTIONS[: len(JOB_OPTIONS)] == JOB_OPTIONS
    takes = {"submit": SubmitOptions, "submit_many": SubmitOptions, "create_schedule": JobOptions}
    for name, options in takes.items():
        method = getattr(StarqClient, name)
        *_, last = inspect.signature(method).parameters.values()
        assert (last.name, last.kind) == ("options", inspect.Parameter.VAR_KEYWORD), name
        assert get_type_hints(method)["options"] == Unpack[options], name
        assert not set(inspect.signature(method).parameters) & set(SUBMIT_OPTIONS), name  # not spelled out too


async def test_a_misspelled_option_is_refused_by_the_type_checker_and_at_run_time(client: StarqClient):
    # Each ``type: ignore`` must be needed (mypy runs with warn_unused_ignores): were the options to take any
    # name, .ci/typecheck would fail here. (So ``client`` is annotated: an untyped one is ``Any``, which takes
    # anything.) At run time the call fails before any request, as when each signature spelled the options out.
    with pytest.raises(TypeError, match=r"^StarqClient.submit\(\) got an unexpected keyword argument 'unique_kye'$"):
        await client.submit("q", {}, unique_kye="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"StarqClient.submit_many\(\) got an unexpected keyword argument 'tag'"):
        await client.submit_many("q", [], tag=["a"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"StarqClient.create_schedule\(\) got an unexpected keyword argument 'delay'"):
        await client.create_schedule("q", "s", every=60, delay=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'timout'"):
        StarqClient(client.url, timout=5)  # type: ignore[call-arg]


async def test_submit_sends_every_job_option(client, make_queue, queue_name):
    await make_queue()
    job = await client.submit(queue_name, {"n": 1}, unique_key="u-1", unique_for=60, **OPTIONS)
    assert (job.key, job.unique_key, job.unique_for, job.timeout, job.max_retries, job.tags) == (
        "acct-1",
        "u-1",
        60,
        30,
        2,
        ["mail", "eu"],
    )
    stored = await client.get_job(queue_name, job.id)
    assert (stored.key, stored.timeout, stored.max_retries, stored.tags) == ("acct-1", 30, 2, ["mail", "eu"])
    # The unique key is held: the same key comes back as the job already there, and no job is added.
    again = await client.submit(queue_name, {"n": 2}, unique_key="u-1")
    assert again.id == job.id
    assert (await client.get_queue(queue_name)).pending == 1
    # Options left out are not sent: the job shows the server's defaults.
    plain = await client.submit(queue_name, {"n": 3})
    assert (plain.key, plain.unique_key, plain.timeout, plain.max_retries, plain.tags) == ("", "", None, None, [])


async def test_submit_checks(client, make_queue, queue_name):
    await make_queue()
    with pytest.raises(TypeError, match="list of strings"):
        await client.submit(queue_name, {"n": 1}, tags="mail")
    with pytest.raises(ValidationFailed, match="timeout"):
        await client.submit(queue_name, {"n": 1}, timeout=0)


async def test_submit_many_applies_options_to_items_that_lack_them(client, make_queue, queue_name):
    await make_queue()
    batch = await client.submit_many(
        queue_name,
        [
            {"payload": {"n": 0}},
            {"payload": {"n": 1}, "key": "own-key", "priority": 1},
            {"payload": {"n": 2}, "run_at": "2099-01-01T00:00:00Z"},
        ],
        priority=7,
        delay=3600,
        **OPTIONS,
    )
    first, second, third = batch.jobs
    assert (first.key, first.priority, first.status, first.tags) == ("acct-1", 7, "scheduled", ["mail", "eu"])
    assert (second.key, second.priority, second.status) == ("own-key", 1, "scheduled")
    assert (third.status, third.run_at) == ("scheduled", "2099-01-01T00:00:00.000Z")  # its own time, not the delay
    assert {j.timeout for j in batch.jobs} == {30} and {j.max_retries for j in batch.jobs} == {2}
    # One unique key for a whole batch: the first job is made, the rest are skipped as its duplicates.
    unique = await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(3)], unique_key="once")
    assert (unique.submitted, unique.skipped, len({j.id for j in unique.jobs})) == (1, 2, 1)


async def test_queue_flow_control_settings(client, make_queue, queue_name):
    created = await make_queue(concurrency=4, key_concurrency=1, rate_limit={"max": 10, "per_ms": 1000})
    assert (created.concurrency, created.key_concurrency, created.rate_limit) == (4, 1, {"max": 10, "per_ms": 1000})
    changed = await client.update_queue(queue_name, rate_limit={"max": 5, "per_ms": 200}, concurrency=0)
    assert (changed.concurrency, changed.key_concurrency, changed.rate_limit) == (0, 1, {"max": 5, "per_ms": 200})
    # None leaves the limit alone, as it does every setting; clear_rate_limit removes it.
    kept = await client.update_queue(queue_name, rate_limit=None, description="kept")
    assert kept.rate_limit == {"max": 5, "per_ms": 200}
    cleared = await client.update_queue(queue_name, clear_rate_limit=True)
    assert cleared.rate_limit is None and (await client.get_queue(queue_name)).rate_limit is None
    with pytest.raises(ValueError, match="not both"):
        await client.update_queue(queue_name, rate_limit={"max": 1, "per_ms": 1}, clear_rate_limit=True)


async def test_key_concurrency_is_honoured(client, make_queue, queue_name):
    await make_queue(key_concurrency=1)
    await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(3)], key="same")
    await client.submit(queue_name, {"n": 9}, key="other")
    claimed = await client.claim(queue_name, count=10)
    assert sorted(j.payload["n"] for j in claimed) == [0, 9]  # one job of each key at a time


async def test_release_gives_a_job_back_without_an_attempt(client, make_queue, queue_name):
    await make_queue()
    await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(2)])
    first, second = await client.claim(queue_name, count=2)
    assert await client.release(queue_name, first.id, lease_id=first.lease_id) == "pending"
    # Repeating it with the same lease changes nothing and is answered the same (why it is retried).
    assert await client.release(queue_name, first.id, lease_id=first.lease_id) == "pending"
    back = await client.get_job(queue_name, first.id)
    assert (back.status, back.retries, back.lease_id) == ("pending", 0, "")
    assert [e["event"] for e in back.raw["history"]] == ["submitted", "claimed", "released"]
    assert await client.release(queue_name, second.id, lease_id=second.lease_id, delay=3600) == "scheduled"
    with pytest.raises(NotClaimed):
        await client.release(queue_name, second.id, lease_id="another-lease")
    (again,) = await client.claim(queue_name)
    assert again.id == first.id
    with pytest.raises(LeaseLost):
        await client.release(queue_name, again.id, lease_id="stale-lease")
    await client.cancel(queue_name, again.id)
    with pytest.raises(JobCancelled):
        await client.release(queue_name, again.id, lease_id=again.lease_id)


async def test_promote(client, make_queue, queue_name):
    await make_queue()
    later = await client.submit(queue_name, {"n": 1}, delay=3600)
    assert await client.promote(queue_name, later.id) == "pending"
    assert (await client.get_job(queue_name, later.id)).status == "pending"
    with pytest.raises(InvalidState):
        await client.promote(queue_name, later.id)


async def test_bulk_returns_each_result_in_order(client, make_queue, queue_name):
    await make_queue()
    later = [await client.submit(queue_name, {"n": i}, delay=3600) for i in range(2)]
    done = await client.bulk(queue_name, "promote", (j.id for j in (later[0], later[1], later[0])))
    assert (done.ok, done.errors) == (2, 1)
    assert [r["job_id"] for r in done.results] == [later[0].id, later[1].id, later[0].id]
    assert done.results[0] == {"job_id": later[0].id, "ok": True, "status": "pending"}
    assert done.results[2]["error"] == "invalid_state" and done.results[2]["detail"]
    cancelled = await client.bulk(queue_name, "cancel", [j.id for j in later])
    assert [r["status"] for r in cancelled.results] == ["cancelled", "cancelled"]
    deleted = await client.bulk(queue_name, "delete", [later[0].id])
    assert deleted.results == [{"job_id": later[0].id, "ok": True, "status": "deleted"}]
    assert (await client.get_queue(queue_name)).cancelled == 1
    with pytest.raises(ValidationFailed, match="action"):
        await client.bulk(queue_name, "archive", [later[1].id])


async def test_purge_by_status(client, make_queue, queue_name):
    await make_queue()
    await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(5)])
    await client.submit(queue_name, {"n": 9}, delay=3600)
    for job in await client.claim(queue_name, count=2):
        await client.complete(queue_name, job.id, lease_id=job.lease_id)
    assert await client.purge(queue_name, "completed") == 2
    assert await client.purge(queue_name, "completed") == 0
    assert await client.purge(queue_name, "pending") == 3
    info = await client.get_queue(queue_name)
    assert (info.pending, info.completed, info.scheduled) == (0, 0, 1)
    with pytest.raises(ValidationFailed):
        await client.purge(queue_name, "claimed")


async def test_list_jobs_by_tag_and_search(client, make_queue, queue_name):
    await make_queue()
    tagged = await client.submit_many(
        queue_name, [{"payload": {"to": f"user{i}@example.com"}} for i in range(3)], tags=["vip"]
    )
    await client.submit(queue_name, {"to": "someone@else.org"}, tags=["other"])
    page = await client.list_jobs(queue_name, tag="vip")
    assert [j.id for j in page.jobs] == [j.id for j in reversed(tagged.jobs)]  # newest first
    found = await client.list_jobs(queue_name, q="ELSE.ORG")  # case-insensitive, in the payload
    assert [j.payload["to"] for j in found.jobs] == ["someone@else.org"]
    both = [j.payload["to"] async for j in client.iter_jobs(queue_name, tag="vip", q="user1")]
    assert both == ["user1@example.com"]
    assert len([j async for j in client.iter_jobs(queue_name, tag="vip", limit=2)]) == 2
    assert (await client.list_jobs(queue_name, tag="vip", status="completed")).jobs == []
