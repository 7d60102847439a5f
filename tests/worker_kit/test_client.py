"""StarqClient against a real ``starq serve``: every endpoint, error mapping, and which requests are retried."""

from __future__ import annotations

import pytest
import trio

from starq.worker_kit import (
    InvalidState,
    Job,
    JobNotFound,
    LeaseLost,
    NotClaimed,
    QueueExists,
    QueueNotFound,
    ServerUnreachable,
    StarqClient,
    Unauthorized,
    ValidationFailed,
    errors,
)
from worker_kit.helpers import FAST_RETRY


async def test_queue_endpoints(client, make_queue, queue_name):
    created = await make_queue(description="emails", max_retries=5, claim_timeout=30)
    assert (created.name, created.description, created.max_retries, created.claim_timeout) == (
        queue_name,
        "emails",
        5,
        30,
    )
    assert created.raw["name"] == queue_name
    assert queue_name in [q.name for q in await client.list_queues()]
    assert (await client.update_queue(queue_name, max_retries=1, description=None)).max_retries == 1
    assert (await client.get_queue(queue_name)).description == "emails"
    assert (await client.pause(queue_name)).paused is True
    assert (await client.resume(queue_name)).paused is False
    stats = await client.stats(queue_name)
    assert stats["queue"] == queue_name
    assert (await client.delete_queue(queue_name)) == {"status": "deleted", "queue": queue_name}
    with pytest.raises(QueueNotFound):
        await client.get_queue(queue_name)


async def test_health_and_openapi(client):
    assert (await client.health())["status"] == "ok"
    paths = (await client.openapi())["paths"]
    assert "/api/v1/queues/{name}/jobs/claim" in paths


async def test_job_lifecycle(client, make_queue, queue_name):
    await make_queue(max_retries=1)
    one = await client.submit(queue_name, {"n": 0}, priority=5)
    assert isinstance(one, Job) and one.status == "pending" and one.payload == {"n": 0}
    batch = await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(1, 4)])
    assert (batch.submitted, batch.skipped, len(batch.jobs)) == (3, 0, 3)
    later = await client.submit(queue_name, {"n": 9}, delay=3600)
    assert later.status == "scheduled"

    claimed = await client.claim(queue_name, count=2, worker="w1")
    assert [j.payload["n"] for j in claimed] == [0, 1]  # priority first, then FIFO
    first, second = claimed
    assert first.lease_id and first.lease_seconds == pytest.approx(600, abs=1)
    assert await client.extend(queue_name, first.id, lease_id=first.lease_id, seconds=60)
    assert await client.complete(queue_name, first.id, {"ok": True}, lease_id=first.lease_id) == "completed"
    # Repeating a report with the same lease is answered the same way (why it is safe to retry).
    assert await client.complete(queue_name, first.id, {"ok": True}, lease_id=first.lease_id) == "completed"
    done = await client.get_job(queue_name, first.id)
    assert (done.status, done.result) == ("completed", {"ok": True})

    outcome = await client.fail(queue_name, second.id, "boom", lease_id=second.lease_id)
    assert (outcome.status, outcome.retries) == ("pending", 1)
    with pytest.raises(NotClaimed):
        await client.complete(queue_name, second.id, lease_id="stale-lease")

    again = await client.claim(queue_name, count=3)
    with pytest.raises(LeaseLost):
        await client.complete(queue_name, again[0].id, lease_id="stale-lease")
    acked = await client.ack(
        queue_name,
        complete=[{"id": again[0].id, "lease_id": again[0].lease_id}],
        fail=[{"id": j.id, "lease_id": j.lease_id, "error": "x", "retry": False} for j in again[1:]],
    )
    assert (acked.completed, acked.failed, acked.errors) == (1, len(again) - 1, 0)

    assert await client.cancel(queue_name, later.id) == "cancelled"
    with pytest.raises(InvalidState):
        await client.cancel(queue_name, later.id)
    assert await client.retry_job(queue_name, later.id) == "pending"
    dead = [j async for j in client.iter_jobs(queue_name, status="failed")]
    assert dead and await client.retry_dead(queue_name) == len(dead)
    with pytest.raises(NotClaimed):
        await client.complete(queue_name, later.id)
    with pytest.raises(JobNotFound):
        await client.get_job(queue_name, "no-such-job")


async def test_iter_jobs_follows_cursors(client, make_queue, queue_name):
    await make_queue()
    await client.submit_many(queue_name, [{"payload": {"n": i}} for i in range(7)])
    page = await client.list_jobs(queue_name, count=3)
    assert len(page.jobs) == 3 and page.has_more and page.cursor
    every = [j.payload["n"] async for j in client.iter_jobs(queue_name)]
    assert every == list(range(6, -1, -1))
    assert len([j async for j in client.iter_jobs(queue_name, limit=5)]) == 5


async def test_errors_carry_server_codes(client, make_queue, queue_name):
    await make_queue()
    with pytest.raises(QueueExists) as exists:
        await make_queue()
    assert exists.value.status == 409 and exists.value.code == "queue_exists" and exists.value.detail
    with pytest.raises(ValidationFailed):
        await client.claim(queue_name, count=1000)
    async with StarqClient(client.url, "wrong-key", retry=FAST_RETRY) as intruder:
        with pytest.raises(Unauthorized):
            await intruder.submit(queue_name, {"n": 1})


def test_every_error_the_server_names_is_known_to_the_client_by_its_code():
    # One hierarchy serves both sides; what the server can raise must come back as the same class.
    for cls in errors.SERVER_ERRORS:
        rebuilt = errors.error_from_response(cls.status, {"detail": "x", "error": cls.code})
        assert type(rebuilt) is cls and rebuilt.status == cls.status


def test_unknown_codes_fall_back_on_the_status():
    err = errors.error_from_response(409, {"detail": "new rule", "error": "brand_new"})
    assert isinstance(err, errors.Conflict) and err.code == "brand_new" and err.detail == "new rule"
    assert isinstance(errors.error_from_response(502, "<html>"), errors.UnexpectedResponse)


def test_the_status_fallback_is_a_familys_base_and_the_clients_own_errors_are_not_the_servers():
    # Derived from the class declarations: the first class declared with a status stands for it.
    for status, family in [(404, errors.NotFound), (409, errors.Conflict), (503, errors.StoreUnavailable)]:
        assert type(errors.error_from_response(status, {"detail": "x", "error": "brand_new"})) is family
    assert type(errors.error_from_response(431, {"detail": "x"})) is errors.HeadersTooLarge
    own = {errors.ServerUnreachable, errors.UnexpectedResponse, errors.UnknownDependency}
    assert own.isdisjoint(errors.SERVER_ERRORS) and errors.LeaseLost in errors.SERVER_ERRORS


async def test_unreachable_server_is_retried_then_reported(free_port):
    async with StarqClient(f"http://127.0.0.1:{free_port}", retry=FAST_RETRY) as c:
        with pytest.raises(ServerUnreachable) as caught:
            await c.health()
    assert caught.value.maybe_processed is False


async def _hang_up_server(counts: list[int], task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A TCP peer that reads each request and closes without answering: a server that died mid-request."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            counts.append(1)

    await trio.serve_listeners(handle, listeners)


@pytest.mark.parametrize(
    ("call", "tries"),
    [
        (lambda c: c.claim("q", count=1), 1),  # may have taken jobs: never repeated
        (lambda c: c.submit("q", {"n": 1}), 1),  # would submit twice
        (lambda c: c.complete("q", "j"), 1),  # no lease: a repeat is not answered the same way
        (lambda c: c.complete("q", "j", lease_id="L"), 3),  # same lease: repeat is harmless
        (lambda c: c.get_queue("q"), 3),
        (lambda c: c.release("q", "j", lease_id="L"), 3),  # same lease: a repeat does nothing more
        (lambda c: c.release("q", "j", lease_id=None), 1),
        (lambda c: c.promote("q", "j"), 1),  # a repeat would answer invalid_state for a promoted job
        (lambda c: c.purge("q", "completed"), 1),  # a repeat would remove jobs finished in between
        (lambda c: c.bulk("q", "retry", ["j"]), 1),  # a repeat would answer invalid_state for each retried job
        (lambda c: c.list_jobs("q", tag="t", q="x"), 3),
        (lambda c: c.create_schedule("q", "s", every=1), 1),  # a repeat would answer schedule_exists
        (lambda c: c.list_schedules("q"), 3),
        (lambda c: c.get_schedule("q", "s"), 3),
        (lambda c: c.update_schedule("q", "s", every=5), 3),  # a settings change: same result when repeated
        (lambda c: c.pause_schedule("q", "s"), 3),
        (lambda c: c.resume_schedule("q", "s"), 3),
        (lambda c: c.delete_schedule("q", "s"), 1),
    ],
)
async def test_lost_answers_are_retried_only_when_safe(nursery, call, tries):
    counts: list[int] = []
    port = await nursery.start(_hang_up_server, counts)
    async with StarqClient(f"http://127.0.0.1:{port}", retry=FAST_RETRY) as c:
        with pytest.raises(ServerUnreachable) as caught:
            await call(c)
    assert caught.value.maybe_processed is True
    assert len(counts) == tries
