"""Running a real ``starq serve`` process for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import attrs

SERVING = re.compile(rb"Starq is serving on (http://\S+)")


@attrs.define
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    _chunks: list[bytes] = attrs.Factory(list)
    _drainer: threading.Thread | None = None

    def start_draining(self) -> None:
        """Reads the server's output as it comes. Unread, the pipe fills (64 KiB of log lines under load) and
        the server blocks on its next log write, freezing every request."""
        output = self.process.stdout
        assert output is not None  # started with stdout=PIPE

        def drain() -> None:
            for line in output:
                self._chunks.append(line)

        self._drainer = threading.Thread(target=drain, daemon=True)
        self._drainer.start()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Sends ``sig`` and waits for the exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"starq serve did not exit within {timeout} s of {signal.Signals(sig).name}"
                ) from None
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        """What the server wrote to stdout/stderr (only once it has exited)."""
        if self._drainer is not None:
            self._drainer.join(10)
        return b"".join(self._chunks).decode(errors="replace")


def start_server(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 30.0,
    program: list[str] | None = None,
    clean_env: bool = False,
) -> ServerProcess:
    """Starts ``starq serve --port 0 ARGS...`` and returns once it prints where it serves.

    ``program`` is the ``starq`` command to run (default: this interpreter's); with ``clean_env`` the process
    gets only ``env`` and a minimal environment, nothing of the test run's.
    """
    base = (
        {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
        if clean_env
        else os.environ
    )
    full_env = {**base, **(env or {})}
    process = subprocess.Popen(
        [*(program or [sys.executable, "-m", "starq.cli"]), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    # Lines are read by a thread from the start: a select() on the pipe followed by readline() misses a line
    # that arrived in the same read as the one before it (it sits in the reader's buffer, not in the pipe).
    server = ServerProcess(process, "")
    server.start_draining()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = SERVING.search(b"".join(server._chunks))
        if found:
            server.url = found.group(1).decode()
            _wait_healthy(server.url, deadline)
            return server
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"starq serve did not start: {server.output()}")


def _wait_healthy(url: str, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("starq serve never became healthy")
