"""Every response, JSON or HTML, success or error, carries the security headers."""

from __future__ import annotations

import pytest

KEY = {"X-API-Key": "dev-key"}

API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def assert_locked_down(response, csp_must_contain: str) -> None:
    for name, value in API_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    csp = response.headers.get("Content-Security-Policy", "")
    assert csp_must_contain in csp, csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp and "script-src 'unsafe-inline'" not in csp


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/api/health", {}, 200),
        ("GET", "/api/openapi.json", {}, 200),
        ("GET", "/api/v1/queues", {}, 200),
        ("GET", "/api/v1/queues/no-such-queue", {}, 404),
        ("POST", "/api/v1/queues", {}, 401),
        ("POST", "/api/v1/queues", KEY, 422),
        ("GET", "/no/such/route", {}, 404),
    ],
)
async def test_api_responses_carry_security_headers(client, method, path, headers, status):
    response = await client.open(path, method=method, headers=headers)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    # JSON may load nothing at all.
    assert_locked_down(response, "default-src 'none'")


async def test_malformed_and_oversized_bodies_carry_security_headers(make_client, queue_name):
    client = make_client(max_body_bytes=1000)
    bad = await client.post("/api/v1/queues", data=b"{nope", headers={**KEY, "Content-Type": "application/json"})
    assert bad.status_code == 400
    assert_locked_down(bad, "default-src 'none'")
    big = await client.post("/api/v1/queues", data=b" " * 5000, headers={**KEY, "Content-Type": "application/json"})
    assert big.status_code == 413
    assert_locked_down(big, "default-src 'none'")


async def test_docs_page_runs_only_scripts_and_styles_of_its_own_origin(client):
    response = await client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert_locked_down(response, "default-src 'none'")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe-inline" not in csp
