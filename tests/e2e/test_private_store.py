"""The embedded store is private to the user running ``starq serve``, checked as another local user would try it:
a throwaway account (created with ``useradd``, removed after) cannot list the data folder, read the AOF or any
other file in it, connect to the store's socket, or reach the store over TCP, even when the data folder's path
is too long for a socket in it.

The data folder is put under a folder everyone may enter, so a denial comes from the data folder's own modes,
not from a private parent (the test checks that the other user does reach the parent). The tests create a user,
so they need root, which CI has: they fail, not skip, without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from e2e.helpers import KEY, api, children_of, create_queue

# The other user runs the system's Python: the test's own interpreter may sit in a folder only root can enter.
SYSTEM_PYTHON = "/usr/bin/python3"

# Run as the other user: tries each path (list a folder, read a file, connect to a socket) and each TCP port (a
# PING), and prints what it could do.
PROBE = r"""
import json, os, socket, stat, sys
paths, ports = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for path in paths:
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            os.listdir(path)
        elif stat.S_ISSOCK(mode):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
        out[path] = "allowed"
    except OSError as exc:
        out[path] = type(exc).__name__
for port in ports:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            out[str(port)] = "answered: " + s.recv(64).decode(errors="replace")
    except OSError as exc:
        out[str(port)] = type(exc).__name__
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def other_user():
    """A throwaway local account (no home, no shell); removed after the module's tests."""
    assert os.geteuid() == 0, "these tests create a local user, so they run as root (as CI does)"
    assert os.path.exists(SYSTEM_PYTHON), f"{SYSTEM_PYTHON} runs the other user's probe"
    name = f"sq-{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def probe_as(user: str, paths: list[str], ports: tuple[int, ...] = ()) -> dict[str, str]:
    """What ``user`` can do with each path and port (see PROBE)."""
    done = subprocess.run(
        [
            shutil.which("runuser") or "/usr/sbin/runuser",
            "-u",
            user,
            "--",
            SYSTEM_PYTHON,
            "-I",
            "-c",
            PROBE,
            json.dumps(paths),
            json.dumps(list(ports)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def open_parent():
    """A folder anyone may enter and list, for the data folder to sit in."""
    parent = Path(tempfile.mkdtemp(prefix="starq-private-"))
    parent.chmod(0o755)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def serve_with_a_secret(server_factory, service_group_reaper, data: Path, queue_name: str):
    server = server_factory("--data-dir", str(data), redis=False)
    service_group_reaper(server)
    create_queue(server, queue_name)
    r = httpx.post(f"{api(server)}/{queue_name}/jobs", json={"payload": {"secret": "s3cr3t"}}, headers=KEY)
    assert r.status_code == 201
    time.sleep(1.2)  # appendfsync everysec: the AOF has been written
    return server


def store_url(server) -> str:
    log = "".join(c.decode(errors="replace") for c in server._chunks)
    (url,) = {word.rstrip('"},') for word in log.split() if word.startswith("unix://")}
    return url


def listening_tcp_ports(pid: int) -> list[int]:
    """The TCP ports the process ``pid`` listens on (its socket inodes matched against /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_another_user_cannot_read_the_data_folder_or_reach_the_store(
    other_user, open_parent, server_factory, service_group_reaper, queue_name
):
    data = open_parent / "data"
    serve_with_a_secret(server_factory, service_group_reaper, data, queue_name)
    everything = [data, *sorted(data.rglob("*"))]
    names = {p.name for p in everything}
    assert any(name.endswith(".aof") for name in names) and "store.sock" in names, names
    assert b"s3cr3t" in b"".join(p.read_bytes() for p in data.rglob("*.aof"))  # the secret is on disk

    seen = probe_as(other_user, [str(open_parent), *map(str, everything)])
    assert seen.pop(str(open_parent)) == "allowed"  # the parent is open: the data folder itself keeps them out
    assert seen == {str(p): "PermissionError" for p in everything}


def test_a_data_folder_too_long_for_a_socket_keeps_the_store_private_and_off_tcp(
    other_user, open_parent, server_factory, service_group_reaper, queue_name
):
    data = open_parent / ("d" * 60) / ("e" * 60) / "data"
    data.parent.mkdir(parents=True, mode=0o755)
    data.parent.parent.chmod(0o755)
    server = serve_with_a_secret(server_factory, service_group_reaper, data, queue_name)
    sock = store_url(server)[len("unix://") :]
    assert not sock.startswith(str(data))  # the socket lives elsewhere, in a private folder of root's
    (store_pid,) = children_of(server.process.pid)
    assert listening_tcp_ports(store_pid) == []  # the store listens on no TCP port at all

    everything = [str(p) for p in [data, *sorted(data.rglob("*"))]]
    seen = probe_as(other_user, [str(data.parent), sock, os.path.dirname(sock), *everything])
    assert seen.pop(str(data.parent)) == "allowed"
    assert seen == dict.fromkeys([sock, os.path.dirname(sock), *everything], "PermissionError")
