"""Methods a path does not allow, over real HTTP against ``starq serve``: 405 ``method_not_allowed`` with an
``Allow`` header listing what the path does allow.

``…/jobs/claim`` and ``…/jobs/ack`` have the shape of ``…/jobs/{job}`` too; they must still answer as the POST
routes they are (as ``…/pause`` does), never as a lookup of a job called "claim".
"""

from __future__ import annotations

import httpx
import pytest

from api.helpers import KEY


def allowed(response: httpx.Response) -> set[str]:
    return {method.strip() for method in response.headers.get("Allow", "").split(",") if method.strip()}


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("word", ["claim", "ack"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "PUT", "PATCH"])
@pytest.mark.parametrize("key", [KEY, {}], ids=["key", "no-key"])
def test_other_methods_on_claim_and_ack_are_405(http, queue_name, word, method, key):
    assert http.post("/api/v1/queues", json={"name": queue_name}, headers=KEY).status_code == 201
    pause = http.request(method, f"/api/v1/queues/{queue_name}/pause", headers=key)
    assert pause.status_code == 405 and allowed(pause) == {"OPTIONS", "POST"}  # what a POST-only path says
    for queue in (queue_name, queue_name + "-none"):
        r = http.request(method, f"/api/v1/queues/{queue}/jobs/{word}", headers=key)
        assert r.status_code == 405, (method, word, r.status_code, r.text)
        assert allowed(r) == allowed(pause), r.headers.get("Allow")
        if method != "HEAD":
            detail = f"{method} is not allowed on /api/v1/queues/{queue}/jobs/{word}"
            assert r.json() == {"detail": detail, "error": "method_not_allowed"}, r.text


@pytest.mark.parametrize("word", ["claim", "ack"])
def test_options_on_claim_and_ack_lists_only_post(http, queue_name, word):
    pause = http.options(f"/api/v1/queues/{queue_name}/pause")
    r = http.options(f"/api/v1/queues/{queue_name}/jobs/{word}")
    assert r.status_code == pause.status_code == 200
    assert allowed(r) == allowed(pause) == {"OPTIONS", "POST"}


def test_jobs_themselves_still_answer_get_and_delete(http, queue_name):
    assert http.post("/api/v1/queues", json={"name": queue_name}, headers=KEY).status_code == 201
    job = http.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {"a": 1}}, headers=KEY).json()["jobs"][0]
    path = f"/api/v1/queues/{queue_name}/jobs/{job['id']}"
    assert http.get(path).json()["id"] == job["id"]
    assert http.head(path).status_code == 200
    assert http.delete(path, headers=KEY).json() == {"status": "cancelled", "job_id": job["id"]}
    r = http.put(path)
    assert r.status_code == 405 and allowed(r) == {"DELETE", "GET", "HEAD", "OPTIONS"}
    missing = http.get(f"/api/v1/queues/{queue_name}/jobs/0190a000-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"] == "job_not_found"
    # POST on the paths themselves is untouched: a claim and an ack.
    assert http.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={}, headers=KEY).json() == {"jobs": []}
    assert http.post(f"/api/v1/queues/{queue_name}/jobs/ack", json={}, headers=KEY).status_code == 200
