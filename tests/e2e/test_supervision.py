"""``starq serve --workers N`` supervises its worker processes: one that dies is restarted, ones that keep dying
make the server give up with a clear line; and a server still waiting for its store stops at once when told."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from e2e.helpers import children_of, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_worker_processes_that_keep_dying_make_the_server_exit_nonzero(server_factory, service_group_reaper):
    server = server_factory("--workers", "2")
    service_group_reaper(server)
    first = set(children_of(server.process.pid))
    assert len(first) == 2
    killed = first.pop()
    os.kill(killed, signal.SIGKILL)  # one death: restarted, and the server goes on
    # The killed pid stays listed until the kernel has it a zombie: wait for two children, neither of them it.
    wait_for(
        lambda: len(now := set(children_of(server.process.pid))) == 2 and killed not in now,
        what="the killed worker process replaced",
    )
    assert server.process.poll() is None
    deadline = time.monotonic() + 60
    while server.process.poll() is None and time.monotonic() < deadline:
        for pid in children_of(server.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    assert server.process.wait(10) == 3
    output = server.output()
    assert "worker processes exited 6 times within 60 s" in output and "giving up" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_server_waiting_for_its_store_stops_at_once_on_sigterm(workers):
    unreachable = f"redis://127.0.0.1:{_free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "starq.cli", "serve", "--port", "0", "--redis-url", unreachable, "--workers", workers],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    lines: list[bytes] = []
    output_pipe = process.stdout
    assert output_pipe is not None
    reader = threading.Thread(target=lambda: lines.extend(output_pipe), daemon=True)
    reader.start()
    try:
        # Started, and waiting for the store (it waits up to 30 s): it says so once it has tried.
        wait_for(
            lambda: any(b"waiting for the store" in line for line in lines), timeout=60, what="waiting for the store"
        )
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=8) is not None
        reader.join(10)
        output = b"".join(lines).decode()
        assert "Traceback" not in output, output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
