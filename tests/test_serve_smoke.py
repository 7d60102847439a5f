import httpx


def test_health(server):
    r = httpx.get(server.url + "/api/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
