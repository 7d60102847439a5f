"""Schemathesis against the OpenAPI document the server serves: random and malformed requests, with and
without an API key, must never get a 5xx, and every response must match the spec (status, content type, body
schema). The number of examples per operation is bounded so the run stays short.

The document is built at import time with the same function that serves ``/api/openapi.json`` (Schemathesis'
lazy fixture loader does not work with this pytest); ``test_served_spec_is_the_fuzzed_one`` checks that the
server really serves this document, and every request goes to a real ``starq serve``.
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

import starq.server.app  # noqa: F401 - registers every route, as the server does
from starq.server.api.openapi import build_openapi

KEY = {"X-API-Key": "dev-key"}
FUZZ = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Every check runs: `/jobs/claim` and `/jobs/ack`, which have the shape of `/jobs/{job}` too, answer Allow with
# their own methods only (tests/api/test_methods.py).
EXCLUDED: list = []

# 422s for what a schema cannot say, whatever the generator picks: a cron expression or a time zone that does not
# parse, a dependency on a job the queue does not have.
SEMANTIC = ("cron", "timezone", "depends_on[")

DOCUMENT = build_openapi()
spec = schemathesis.openapi.from_dict(DOCUMENT)


def test_served_spec_is_the_fuzzed_one(server):
    assert httpx.get(server.url + "/api/openapi.json").json() == DOCUMENT


@spec.parametrize()
@FUZZ
def test_every_operation_with_a_key(case, server):
    response = case.call(base_url=server.url, headers=KEY, timeout=30)
    excluded = EXCLUDED
    if response.status_code == 422 and any(word in response.json()["detail"] for word in SEMANTIC):
        excluded = [*EXCLUDED, positive_data_acceptance]
    case.validate_response(response, excluded_checks=excluded)


@spec.parametrize()
@FUZZ
def test_every_operation_without_a_key(case, server):
    # Without the key, whatever the generator put in the case's headers.
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
    response = case.call_and_validate(base_url=server.url, excluded_checks=EXCLUDED, timeout=30)
    # A write the spec declares needs the key; an undeclared method is 405 whoever asks.
    if case.method.upper() == case.operation.method.upper() and case.method.upper() in WRITES:
        assert response.status_code == 401, (case.method, case.path, response.status_code)
