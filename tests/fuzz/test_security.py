"""Security properties of the API: keys, rotation, what a 401 reveals, what the logs show, store URLs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import httpx
import pytest

from starq.server.api.service import key_is_valid
from starq.server.embedded import start_store

KEY = {"X-API-Key": "dev-key"}


def test_key_check_accepts_any_configured_key_and_nothing_else():
    keys = ("old-key-1", "new-key-2")
    assert key_is_valid("old-key-1", keys) and key_is_valid("new-key-2", keys)
    for wrong in (None, "", "old-key", "old-key-1 ", "OLD-KEY-1", "new-key-2x", "dev-key"):
        assert not key_is_valid(wrong, keys), wrong


async def test_rotation_both_keys_work_and_dev_key_is_refused(make_client, queue_name):
    client = make_client(api_keys=("old-key-1", "new-key-2"))
    for key in ("old-key-1", "new-key-2"):
        r = await client.post("/api/v1/queues", json={"name": f"{queue_name}-{key[:3]}"}, headers={"X-API-Key": key})
        assert r.status_code == 201
    r = await client.post("/api/v1/queues", json={"name": f"{queue_name}-dev"}, headers=KEY)
    assert r.status_code == 401


@pytest.mark.parametrize("read_auth", [False, True])
async def test_a_401_never_reveals_whether_a_queue_exists(make_client, queue_name, read_auth):
    client = make_client(read_auth=read_auth)
    assert (await client.post("/api/v1/queues", json={"name": queue_name}, headers=KEY)).status_code == 201
    job = await client.post(f"/api/v1/queues/{queue_name}/jobs", json={"payload": {}}, headers=KEY)
    job_id = (await job.get_json())["jobs"][0]["id"]
    missing = f"{queue_name}-missing"
    requests: list[tuple[str, str, dict | None]] = [
        ("POST", "/api/v1/queues/{q}/jobs", {"payload": {}}),
        ("POST", "/api/v1/queues/{q}/jobs/claim", {}),
        ("PUT", "/api/v1/queues/{q}/jobs/" + job_id + "/complete", {}),
        ("DELETE", "/api/v1/queues/{q}", None),
        ("PATCH", "/api/v1/queues/{q}", {"description": "x"}),
        ("POST", "/api/v1/queues/{q}/pause", None),
    ]
    if read_auth:
        requests += [("GET", "/api/v1/queues/{q}", None), ("GET", "/api/v1/queues/{q}/jobs/" + job_id, None)]
    for method, path, body in requests:
        for headers in ({}, {"X-API-Key": "wrong"}):
            answers = []
            for queue in (queue_name, missing):
                r = await client.open(path.format(q=queue), method=method, json=body, headers=headers)
                answers.append((r.status_code, await r.get_json()))
            assert answers[0] == answers[1], (method, path)
            assert answers[0][0] == 401
    # And nothing changed.
    info = await (await client.get(f"/api/v1/queues/{queue_name}", headers=KEY)).get_json()
    assert info["pending"] == 1 and not info["paused"] and info["description"] == ""


def test_keys_and_store_passwords_never_reach_the_logs(server_factory, redis_url, tmp_path):
    secret, wrong = f"key-{uuid.uuid4().hex}", f"wrong-{uuid.uuid4().hex}"
    user, password = f"starq-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    # An ACL user of its own on the test store: the server must work with user:password in the URL.
    command(redis_url, "ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    host_port = redis_url.split("://", 1)[1]
    env = {"STARQ_API_KEYS": secret, "STARQ_ACCESS_LOG": "1", "STARQ_LOG_LEVEL": "debug"}
    server = server_factory("--redis-url", f"redis://{user}:{password}@{host_port}", redis=False, env=env)
    name = f"sec-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/api/v1/queues", json={"name": name}, headers={"X-API-Key": secret}).status_code == 201
        assert client.post("/api/v1/queues", json={"name": name}, headers={"X-API-Key": wrong}).status_code == 401
        assert client.get(f"/api/v1/queues/{name}?api_key={wrong}").status_code == 200
    server.stop()
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "starq.cli",
            "serve",
            "--check-config",
            "--redis-url",
            f"redis://{user}:{password}@{host_port}",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    logs = server.output() + shown.stdout + shown.stderr
    assert "POST /api/v1/queues" in logs  # the access log did run
    for needle in (secret, password):
        assert needle not in logs
    command(redis_url, "ACL", "DELUSER", user)


def command(url: str, *args: str):
    """Sends one command to a store over a plain socket and returns the decoded reply (enough RESP for here)."""
    if url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(url[len("unix://") :])
    else:
        host, port = url.split("://", 1)[1].rsplit("@", 1)[-1].split(":")
        sock = socket.create_connection((host, int(port)))
    with sock, sock.makefile("rb") as reader:
        sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args))
        return _read(reader)


def _read(reader):
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else reader.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [_read(reader) for _ in range(int(rest))]
    raise ValueError(line)


def test_the_embedded_store_listens_on_loopback_or_a_private_socket_only(tmp_path):
    private = start_store(tmp_path / "sock")
    tcp = start_store(tmp_path / "tcp", port=None, unix_socket=False)
    try:
        assert private.url.startswith("unix://")
        sock = private.url[len("unix://") :]
        assert oct(os.stat(sock).st_mode & 0o777) == oct(0o700)
        for store, port_open in ((private, False), (tcp, True)):
            config = dict(zip(*[iter(command(store.url, "CONFIG", "GET", "*"))] * 2))
            assert config["bind"].split() == ["127.0.0.1"] or config["bind"].split() == ["127.0.0.1", "-::1"]
            assert config["protected-mode"] == "yes"
            assert (config["port"] != "0") == port_open
    finally:
        private.stop()
        tcp.stop()
