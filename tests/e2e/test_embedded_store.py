"""``starq serve`` owns its embedded store: it restarts a store that dies, gives up on one that keeps dying, holds
its data folder against a second server, and refuses a busy port before it starts anything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx

from e2e.helpers import KEY, api, children_of, create_queue, queue_info, wait_for


def store_pid(server) -> int | None:
    pids = children_of(server.process.pid)
    return pids[0] if len(pids) == 1 else None


def test_a_killed_store_is_restarted_with_every_acknowledged_job_and_waiting_claims_recover(
    server_factory, service_group_reaper, tmp_path, queue_name
):
    server = server_factory("--data-dir", str(tmp_path / "data"), redis=False)
    service_group_reaper(server)
    create_queue(server, queue_name)
    with httpx.Client(timeout=30, headers=KEY) as client:
        r = client.post(f"{api(server)}/{queue_name}/jobs", json={"jobs": [{"payload": {"i": i}} for i in range(50)]})
        acked = {j["id"] for j in r.json()["jobs"]}
        claimed = client.post(f"{api(server)}/{queue_name}/jobs/claim", json={"count": 50}).json()["jobs"]
        assert {j["id"] for j in claimed} == acked

        # A long-poll parks (nothing is pending), then the store dies under it.
        answer: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda: answer.append(
                httpx.post(f"{api(server)}/{queue_name}/jobs/claim", json={"block_ms": 30000}, headers=KEY, timeout=60)
            )
        )
        poll.start()
        wait_for(lambda: client.get(f"{server.url}/api/health").json().get("waiting_claims") == 1, what="parked")
        first = store_pid(server)
        assert first is not None
        os.kill(first, signal.SIGKILL)

        # It comes back by itself, as a new process on the same data folder, and the server serves again.
        wait_for(
            lambda: (
                store_pid(server) not in (None, first) and client.get(f"{server.url}/api/health").status_code == 200
            ),
            what="the store restarted",
        )
        info = queue_info(server, queue_name)
        assert (info["claimed"], info["pending"]) == (50, 0)
        for job in claimed:
            done = client.put(
                f"{api(server)}/{queue_name}/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]}
            )
            assert done.status_code == 200, done.text

        # The parked claim is still there, and a job submitted now reaches it (the wake-up path resubscribed).
        assert not answer
        r = client.post(f"{api(server)}/{queue_name}/jobs", json={"payload": {"after": True}})
        assert r.status_code == 201
        poll.join(30)
        assert answer and answer[0].status_code == 200
        assert [j["payload"] for j in answer[0].json()["jobs"]] == [{"after": True}]
    assert queue_info(server, queue_name)["completed"] == 50
    assert "embedded store restarted" in "".join(c.decode(errors="replace") for c in server._chunks)


def test_a_store_that_keeps_dying_makes_the_server_exit_nonzero(server_factory, service_group_reaper, tmp_path):
    server = server_factory("--data-dir", str(tmp_path / "data"), redis=False)
    service_group_reaper(server)
    deadline = time.monotonic() + 60
    while server.process.poll() is None and time.monotonic() < deadline:
        for pid in children_of(server.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    assert server.process.wait(10) != 0
    output = server.output()
    assert "exited 6 times within 60 s" in output and "giving up" in output
    assert "Traceback" not in output
    assert not children_of(server.process.pid)


def _serve(args: list[str], cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starq.cli", "serve", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_a_second_server_on_the_same_data_dir_exits_at_once_and_touches_nothing(
    server_factory, service_group_reaper, tmp_path, queue_name
):
    server = server_factory("--data-dir", "data", redis=False, cwd=str(tmp_path))
    service_group_reaper(server)
    create_queue(server, queue_name)
    sock = tmp_path / "data" / "store.sock"
    before = sock.stat().st_ino
    second = _serve(["--port", "0", "--data-dir", "data"], cwd=tmp_path)
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert "data dir data " in lines[0] and f"pid {server.process.pid}" in lines[0]
    assert "Starq is serving" not in second.stdout
    # The first server's socket and store are untouched, and it still serves.
    assert sock.stat().st_ino == before
    assert queue_info(server, queue_name)["name"] == queue_name
    assert len(children_of(server.process.pid)) == 1


def test_a_busy_port_is_one_line_and_leaves_nothing_running(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(["--port", str(port), "--data-dir", str(tmp_path / "data")], cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip() == f"Error: port {port} is in use — another starq serve?"
    assert "Starq is serving" not in done.stdout
    assert not (tmp_path / "data" / "appendonlydir").exists()  # the store never started
    assert not (tmp_path / "data" / "store.sock").exists()


def test_the_data_dir_and_everything_the_store_writes_are_private(
    server_factory, service_group_reaper, tmp_path, queue_name
):
    data = tmp_path / "data"
    server = server_factory("--data-dir", str(data), redis=False)
    service_group_reaper(server)
    create_queue(server, queue_name)
    time.sleep(1.2)  # appendfsync everysec: the AOF has been written
    for path in [data, *data.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        elif path.is_socket():
            assert mode & 0o077 == 0, (path, oct(mode))
        else:
            assert mode == 0o600, (path, oct(mode))


def test_a_data_dir_too_long_for_a_socket_still_gets_a_private_socket_and_no_tcp_port(
    server_factory, service_group_reaper, tmp_path, queue_name
):
    data = tmp_path / ("d" * 60) / ("e" * 60)
    server = server_factory("--data-dir", str(data), redis=False)
    service_group_reaper(server)
    create_queue(server, queue_name)
    log = "".join(c.decode(errors="replace") for c in server._chunks)
    (url,) = {word.rstrip('"},') for word in log.split() if word.startswith("unix://")}
    sock = url[len("unix://") :]
    assert len(sock) <= 100 and not sock.startswith(str(data))
    assert os.stat(os.path.dirname(sock)).st_mode & 0o777 == 0o700
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b"CONFIG GET port\r\n")
        assert s.recv(100).endswith(b"$1\r\n0\r\n")  # no TCP port at all
