"""Helpers of the API tests: the dev key, ``Api`` (a test client with shortcuts), checks of error bodies, and raw
HTTP/1.1 requests and responses for tests that hang up at exact moments."""

from __future__ import annotations

from typing import Any

import attrs

from starq.server.hub import Hub

KEY = {"X-API-Key": "dev-key"}


@attrs.define
class Api:
    """A test client plus shortcuts for the calls most tests make."""

    client: Any
    engine: Any
    hub: Hub

    async def create(self, name: str, **settings: Any) -> dict:
        r = await self.client.post("/api/v1/queues", json={"name": name, **settings}, headers=KEY)
        assert r.status_code == 201, await r.get_data()
        return await r.get_json()

    async def submit(self, queue: str, body: dict) -> dict:
        r = await self.client.post(f"/api/v1/queues/{queue}/jobs", json=body, headers=KEY)
        assert r.status_code == 201, await r.get_data()
        return await r.get_json()

    async def claim(self, queue: str, count: int = 1, **extra: Any) -> list[dict]:
        r = await self.client.post(f"/api/v1/queues/{queue}/jobs/claim", json={"count": count, **extra}, headers=KEY)
        assert r.status_code == 200, await r.get_data()
        return (await r.get_json())["jobs"]

    async def info(self, queue: str) -> dict:
        r = await self.client.get(f"/api/v1/queues/{queue}")
        assert r.status_code == 200, await r.get_data()
        return await r.get_json()

    async def snapshot(self, queue: str) -> tuple[dict, list]:
        """Everything observable about a queue: its info (minus volatile fields) and all of its jobs."""
        info = await self.info(queue)
        r = await self.client.get(f"/api/v1/queues/{queue}/jobs?count=500")
        return info, (await r.get_json())["jobs"]


async def assert_error(response, status: int, code: str | None = None, mentions: str | None = None) -> dict:
    """The response is a JSON error with ``detail`` and ``error``, the expected status and code, and a detail
    that names ``mentions`` (a field, a limit)."""
    assert response.status_code == status, (response.status_code, await response.get_data())
    assert response.content_type.startswith("application/json"), response.content_type
    body = await response.get_json()
    assert set(body) >= {"detail", "error"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["error"] == code, body
    if mentions is not None:
        assert mentions in body["detail"], body
    return body


# -- real HTTP over raw sockets (for hang-ups at exact moments) ----------------------------------------------


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def http_request(method: str, path: str, body: bytes = b"", key: str = "dev-key", headers: str = "") -> bytes:
    """One HTTP/1.1 request with the key and a JSON body; ``headers`` adds lines of its own (each ending in CRLF)."""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of one Content-Length-framed response; (0, b"") when none (or only part) arrived."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return 0, b""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
    if len(rest) < length:
        return 0, b""
    return status, rest[:length]
