from starq.server.app import create_app
from starq.server.claims import ClaimBroker
from starq.server.settings import Settings

H = {"X-API-Key": "dev-key"}


async def test_api_cycle(engine, queue_name, nursery):
    broker = ClaimBroker(engine)
    await nursery.start(broker.run)
    app = create_app(engine, broker, Settings())
    c = app.test_client()
    r = await c.post("/api/v1/queues", json={"name": queue_name}, headers=H)
    assert r.status_code == 201, await r.get_data()
    r = await c.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {"x": 1}}, headers=H)
    assert r.status_code == 201, await r.get_data()
    r = await c.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={"count": 2}, headers=H)
    body = await r.get_json()
    assert len(body["jobs"]) == 1
    j = body["jobs"][0]
    r = await c.put(
        f"/api/v1/queues/{queue_name}/jobs/{j['id']}/complete",
        json={"lease_id": j["lease_id"], "result": {"ok": 1}},
        headers=H,
    )
    assert (await r.get_json()) == {"status": "completed", "job_id": j["id"]}
    r = await c.get("/api/openapi.json")
    assert r.status_code == 200
    nursery.cancel_scope.cancel()
