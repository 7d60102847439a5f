"""The cap on open connections per server process: derived from the open-file limit by default (after raising the
soft limit to the hard one), enforced with 503s past it, and an explicit cap that does not fit refused at start."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from serverproc import start_server
from starq.server import connection_cap
from starq.server.connection_cap import CapError, OpenFiles

RESERVE = connection_cap.reserve(16, cluster=False)  # with the default pool of 16 store connections


def _limited(soft: int, hard: int) -> list[str]:
    """``starq`` started under the open-file limits ``soft``/``hard`` (a hard limit may always be lowered)."""
    return ["bash", "-c", f'ulimit -Sn {soft} && ulimit -Hn {hard} && exec "$0" "$@"', sys.executable, "-m",
            "starq.cli"]  # fmt: skip


def _messages(output: str) -> list[str]:
    return [json.loads(line)["msg"] for line in output.splitlines() if line.startswith("{")]


def test_the_cap_is_derived_from_the_raised_limit_and_enforced(tmp_path):
    hard = min(300, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    cap = hard - RESERVE
    server = start_server("--data-dir", str(tmp_path / "data"), program=_limited(200, hard))
    url = urlsplit(server.url)
    held = []
    try:
        with open(f"/proc/{server.process.pid}/limits") as f:
            (line,) = [line for line in f if line.startswith("Max open files")]
        assert line.split()[3:5] == [str(hard), str(hard)]  # the soft limit was raised to the hard one
        for _ in range(cap):
            held.append(socket.create_connection((url.hostname, url.port), timeout=10))
        # Every held connection is served: a request on the last one is answered normally.
        held[-1].sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held[-1].recv(65536).startswith(b"HTTP/1.1 200")
        with socket.create_connection((url.hostname, url.port), timeout=10) as extra:
            extra.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := extra.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 503")
        body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        assert body["error"] == "too_many_connections" and f"{cap}" in body["detail"]
    finally:
        for s in held:
            s.close()
        assert server.stop() == 0
    said = [m for m in _messages(server.output()) if m.startswith("connections:")]
    assert said == [
        f"connections: at most {cap:,} per worker process (derived from the open-file limit {hard:,}, raised from "
        f"200 to the hard limit, less {RESERVE:,} kept for the store's connections and other files)"
    ]


def test_an_explicit_cap_above_the_limit_stops_the_start(tmp_path):
    hard = min(1000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    done = subprocess.run(
        [*_limited(hard, hard), "serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--max-connections",
         "5000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"--max-connections 5,000 does not fit the open-file limit {hard:,}" in done.stderr, done.stderr
    assert f"at most {hard - RESERVE:,} connections fit" in done.stderr
    assert "Starq is serving" not in done.stdout
    assert not (tmp_path / "data").exists()  # stopped before it touched anything


def test_decide():
    files = OpenFiles(soft=20_000, hard=20_000, raised_from=1024)
    derived = connection_cap.decide(0, files, kept=144)
    assert derived.connections == 19_856
    assert derived.reason == (
        "derived from the open-file limit 20,000, raised from 1,024 to the hard limit, less 144 kept for the "
        "store's connections and other files"
    )
    assert connection_cap.decide(10_000, files, kept=144).connections == 10_000
    assert connection_cap.decide(19_856, files, kept=144).connections == 19_856
    with pytest.raises(CapError, match="at most 19,856 connections fit"):
        connection_cap.decide(19_857, files, kept=144)
    with pytest.raises(CapError, match="leaves no room"):
        connection_cap.decide(0, OpenFiles(soft=100, hard=100), kept=144)
    refused = connection_cap.decide(0, OpenFiles(soft=1024, hard=4096, raise_refused="not permitted"), kept=24)
    assert refused.connections == 1000 and "could not be raised to the hard limit 4,096" in refused.reason


def test_the_reserve_covers_each_store_node():
    assert connection_cap.reserve(16, cluster=False) == connection_cap.OTHER_FILES + 16
    assert connection_cap.reserve(16, cluster=True) == connection_cap.OTHER_FILES + 16 * connection_cap.CLUSTER_NODES
