"""STARQ_MAX_QUEUES: a create beyond the limit gets 409 too_many_queues and changes nothing."""

from __future__ import annotations

import coredis

from starq.server.app import create_app
from starq.server.claims import ClaimBroker
from starq.server.engine import keys
from starq.server.settings import Settings

KEY = {"X-API-Key": "dev-key"}


async def test_creating_past_the_queue_limit_is_refused(engine, redis_url, queue_name, nursery):
    async with coredis.Redis.from_url(redis_url, decode_responses=True) as raw:
        existing = await raw.scard(keys.REGISTRY)
    broker = ClaimBroker(engine)
    await nursery.start(broker.run)
    client = create_app(engine, broker, Settings(max_queues=existing + 1)).test_client()

    first = await client.post("/api/v1/queues", json={"name": queue_name}, headers=KEY)
    assert first.status_code == 201
    second = await client.post("/api/v1/queues", json={"name": queue_name + "-2"}, headers=KEY)
    assert second.status_code == 409
    body = await second.get_json()
    assert body["error"] == "too_many_queues" and "STARQ_MAX_QUEUES" in body["detail"]
    assert (await client.get(f"/api/v1/queues/{queue_name}-2")).status_code == 404

    # Room again once a queue is deleted.
    assert (await client.delete(f"/api/v1/queues/{queue_name}", headers=KEY)).status_code == 200
    assert (await client.post("/api/v1/queues", json={"name": queue_name + "-2"}, headers=KEY)).status_code == 201
    await engine.delete_queue(queue_name + "-2")
    nursery.cancel_scope.cancel()
