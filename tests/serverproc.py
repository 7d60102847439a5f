"""Running a real ``starq serve`` process for end-to-end tests."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import attrs

SERVING = re.compile(rb"Starq is serving on (http://\S+)")


@attrs.define
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Sends ``sig`` and waits for the exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"starq serve did not exit within {timeout} s of {signal.Signals(sig).name}")
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        """What the server wrote to stdout/stderr (only once it has exited)."""
        out = self.process.stdout.read() if self.process.stdout else b""
        return out.decode(errors="replace")


def start_server(*args: str, env: dict[str, str] | None = None, cwd: str | None = None,
                 timeout: float = 30.0) -> ServerProcess:
    """Starts ``starq serve --port 0 ARGS...`` and returns once it prints where it serves."""
    full_env = {**os.environ, **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "starq.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen += line
            found = SERVING.search(line)
            if found:
                _wait_healthy(found.group(1).decode(), deadline)
                return ServerProcess(process, found.group(1).decode())
        elif process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"starq serve did not start: {seen.decode(errors='replace')}")


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
