"""A client that reads its claim answer and closes at once keeps the jobs it got (curl, requests without a
session): the delivery guard must not mistake that close for a hang-up. One that closes without reading them
(its kernel resets the connection) does not: they go back to the queue at once."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx

KEY = {"X-API-Key": "dev-key"}


def claim_and_close(url: str, queue: str, keep_alive: bool) -> dict:
    parts = urlsplit(url)
    body = json.dumps({"count": 1}).encode()
    head = (
        f"POST /api/v1/queues/{queue}/jobs/claim HTTP/1.1\r\nHost: {parts.hostname}\r\n"
        f"X-API-Key: dev-key\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head + body)
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length(raw):
            chunk = sock.recv(65536)
            assert chunk, raw
            raw += chunk
    # The socket is closed the moment the answer is in.
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])["jobs"][0]


def _length(raw: bytes) -> int:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_jobs_read_then_closed_stay_with_their_client(server, queue_name):
    api = f"{server.url}/api/v1/queues"
    assert httpx.post(api, json={"name": queue_name}, headers=KEY).status_code == 201
    jobs = [{"payload": {"i": i}} for i in range(40)]
    assert httpx.post(f"{api}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY).status_code == 201
    got = [claim_and_close(server.url, queue_name, keep_alive=i % 2 == 0) for i in range(40)]
    for job in got:
        r = httpx.put(f"{api}/{queue_name}/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]}, headers=KEY)
        assert r.status_code == 200, r.text
    info = httpx.get(f"{api}/{queue_name}").json()
    assert (info["completed"], info["pending"], info["claimed"]) == (40, 0, 0)


def claim_then_drop_unread(url: str, queue: str) -> None:
    """Sends a claim, lets its answer arrive, and closes without reading it (as a client whose read timeout
    fired just then): its kernel resets the connection."""
    parts = urlsplit(url)
    body = json.dumps({"count": 1}).encode()
    head = (
        f"POST /api/v1/queues/{queue}/jobs/claim HTTP/1.1\r\nHost: {parts.hostname}\r\n"
        f"X-API-Key: dev-key\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head + body)
        sock.settimeout(10)
        assert sock.recv(1, socket.MSG_PEEK)  # the answer is there; it is never read
        time.sleep(0.05)


def test_jobs_whose_client_reset_unread_go_back(server, queue_name):
    api = f"{server.url}/api/v1/queues"
    assert httpx.post(api, json={"name": queue_name, "claim_timeout": 600}, headers=KEY).status_code == 201
    jobs = [{"payload": {"i": i}} for i in range(5)]
    assert httpx.post(f"{api}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY).status_code == 201
    for _ in range(5):
        claim_then_drop_unread(server.url, queue_name)
    # claim_timeout is ten minutes: a job counted as delivered would stay claimed.
    deadline = time.monotonic() + 10
    while (info := httpx.get(f"{api}/{queue_name}").json())["pending"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (info["pending"], info["claimed"]) == (5, 0)
