"""Helpers of the end-to-end tests: plain-HTTP calls to a real ``starq serve`` and whole-service process control."""

from __future__ import annotations

import os
import signal
import time

import httpx

from starq.server.data_dir import alive

KEY = {"X-API-Key": "dev-key"}


def api(server) -> str:
    return f"{server.url}/api/v1/queues"


def create_queue(server, name: str, **settings) -> dict:
    r = httpx.post(api(server), json={"name": name, **settings}, headers=KEY, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def queue_info(server, name: str) -> dict:
    r = httpx.get(f"{api(server)}/{name}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")


def kill_service(server) -> None:
    """``kill -9`` of the whole service: the server, the process group the test harness gave it, and every
    process it started (its embedded store runs in a session of its own)."""
    pgid = server.process.pid  # started with start_new_session: its pid is the group id
    children = children_of(server.process.pid)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait()
    wait_for(lambda: not _group_alive(pgid), timeout=30, what="every process of the group gone")
    wait_for(lambda: not any(_state_of(pid) not in ("Z", "?") for pid in children), timeout=30, what="children gone")


def children_of(parent: int) -> list[int]:
    """The pids of the live processes whose parent is ``parent``."""
    out = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            out.append(pid)
    return out


def _group_alive(pgid: int) -> bool:
    if not alive(-pgid):
        return False
    # Zombies still count for killpg; a group whose members all exited but wait for reaping is gone enough.
    return any(_pgid_of(pid) == pgid and _state_of(pid) != "Z" for pid in _pids())


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _state_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"
