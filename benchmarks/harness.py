"""Starting what a benchmark needs (a store, ``starq serve``, reference apps, client processes) and measuring it.

Everything runs on loopback, every wait has a deadline, and every process started here is stopped by the
context manager that started it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import trio

from starq.server.embedded import EmbeddedStore, start_store

from . import procstat

SERVING = re.compile(r"Starq is serving on http://([\d.]+):(\d+)")
START_TIMEOUT = 60.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@attrs.frozen
class Version:
    """A version of Starq to serve: its Python (whose environment has that version installed) and its folder."""

    name: str  # "current" or "baseline": how rows and tables name it
    label: str  # what it is, for people: a revision, or "this checkout"
    python: str
    cwd: str
    commit: str = ""

    def env(self) -> dict[str, str]:
        """Its own environment first on PATH, as ``uv run`` there would set it."""
        venv = os.path.dirname(os.path.dirname(self.python))
        return {"VIRTUAL_ENV": venv, "PATH": os.path.join(venv, "bin") + os.pathsep + os.environ.get("PATH", "")}


CURRENT = Version("current", "this checkout", sys.executable, ROOT)


def raise_fd_limit() -> None:
    """Thousands of parked long-polls need as many descriptors in the server and in the clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def store(workdir: str) -> Iterator[EmbeddedStore]:
    """A Valkey on a unix socket, with the AOF settings ``starq serve`` uses for its embedded store."""
    started = start_store(os.path.join(workdir, "store"))
    try:
        yield started
    finally:
        started.stop()


@attrs.define
class Server:
    """A running ``starq serve`` (or reference app) process."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: str

    @property
    def pids(self) -> list[int]:
        return procstat.tree(self.process.pid)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _wait_for_line(process: subprocess.Popen[bytes], log_path: str, pattern: re.Pattern[str]) -> re.Match[str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            found = pattern.search(f.read())
        if found:
            return found
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    with open(log_path, errors="replace") as f:
        raise RuntimeError(f"process did not start: {f.read()[-2000:]}")


@contextmanager
def _process(
    args: list[str], pattern: re.Pattern[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], re.Match[str], str]]:
    # Kept open for the process to write to, and closed (and read) once it has exited.
    log = tempfile.NamedTemporaryFile(prefix="starq-bench-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    try:
        yield process, _wait_for_line(process, log.name, pattern), log.name
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        os.unlink(log.name)


@contextmanager
def starq_server(redis_url: str, workers: int = 1, version: Version = CURRENT) -> Iterator[Server]:
    """``starq serve`` of ``version`` on a free port against ``redis_url``, with its default settings: its
    connection cap is derived from its open-file limit (earlier versions capped at 10,000, short of the harness's
    own requests beside 10,000 parked claims; A/B runs, which serve them, do not run the long-poll group)."""
    args = [
        version.python,
        "-m",
        "starq.cli",
        "serve",
        "--port",
        "0",
        "--redis-url",
        redis_url,
        "--workers",
        str(workers),
    ]
    env = version.env() if version is not CURRENT else {}
    with _process(args, SERVING, env, cwd=version.cwd) as (process, found, log):
        server = Server(process, found.group(1), int(found.group(2)), log)
        _wait_healthy(server, workers)
        yield server


@contextmanager
def reference_app(kind: str) -> Iterator[Server]:
    """One of ``benchmarks.apps``' reference servers."""
    with _process([sys.executable, "-m", "benchmarks.apps", kind], re.compile(r"PORT (\d+)")) as (process, found, log):
        yield Server(process, "127.0.0.1", int(found.group(1)), log)


@contextmanager
def hold_server() -> Iterator[Server]:
    """``benchmarks.holdserver``: accepts connections and never answers (the load generator's parking ceiling)."""
    with _process([sys.executable, "-m", "benchmarks.holdserver"], re.compile(r"PORT (\d+)")) as (process, found, log):
        yield Server(process, "127.0.0.1", int(found.group(1)), log)


def _wait_healthy(server: Server, workers: int) -> None:
    """Healthy, and (with several worker processes) every one of them listening, so none joins mid-phase."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with open(server.log_path, errors="replace") as f:
            listening = f.read().count("Running on http")
        try:
            if listening >= workers and http_get_json(server, "/api/health").get("status") == "ok":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError("starq serve never became healthy")


def http_get_json(server: Server, path: str) -> dict[str, Any]:
    """A blocking one-off GET (for health and counts; never on a measured path)."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


def redis_info(url: str, section: str = "clients") -> dict[str, str]:
    """``INFO section`` over a connection of its own (which the caller must subtract from client counts)."""
    if url.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(url[len("unix://") :])
    else:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    with s:
        s.settimeout(10)
        s.sendall(f"INFO {section}\r\n".encode())
        data = b""
        while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
            data += s.recv(65536)
    out = {}
    for line in data.decode().splitlines()[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            out[key] = value
    return out


def redis_clients(url: str) -> int:
    """Connections the store holds, not counting the one asking."""
    return int(redis_info(url)["connected_clients"]) - 1


# Linux takes at most 128 KiB in one command-line argument; a longer spec goes in a file.
ARG_MAX = 100_000


def _spec_file(text: str) -> str:
    with tempfile.NamedTemporaryFile("w", prefix="starq-bench-spec-", suffix=".json", delete=False) as f:
        f.write(text)
    return f.name


async def run_clients(spec: dict[str, Any], procs: int = 1, timeout: float = 600) -> tuple[list[dict[str, Any]], float]:
    """Runs ``procs`` client processes with ``spec`` (``per_proc`` keys are divided among them); returns
    their results and the CPU seconds they used (from the reaped children's rusage, so nothing else may
    exit in between)."""
    results: list[dict[str, Any]] = [{}] * procs

    async def one(i: int) -> None:
        mine = dict(spec)
        for key in spec.get("per_proc", ()):
            mine[key] = spec[key] // procs + (1 if i < spec[key] % procs else 0)
        arg = json.dumps(mine)
        if len(arg) > ARG_MAX:
            arg = "@" + _spec_file(arg)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "benchmarks.client", arg], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None  # opened with stdout=PIPE
        chunks = []
        try:
            with trio.fail_after(timeout):
                async for chunk in proc.stdout:
                    chunks.append(chunk)
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if arg.startswith("@"):
                os.unlink(arg[1:])
        if proc.returncode != 0:
            raise RuntimeError(f"client process failed with {proc.returncode}")
        results[i] = json.loads(b"".join(chunks).decode().strip().splitlines()[-1])

    start = resource.getrusage(resource.RUSAGE_CHILDREN)
    async with trio.open_nursery() as nursery:
        for i in range(procs):
            nursery.start_soon(one, i)
    end = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime)
    return results, cpu


@asynccontextmanager
async def long_lived_client(spec: dict[str, Any]) -> AsyncIterator[tuple[trio.Process, trio.abc.ReceiveStream]]:
    """A client process the caller talks to over stdin/stdout (the long-poll and outcome-wait scenarios)."""
    arg = json.dumps(spec)
    if len(arg) > ARG_MAX:  # the outcome waiters' job ids
        arg = "@" + _spec_file(arg)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "benchmarks.client", arg], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None  # opened with stdout=PIPE
        yield proc, proc.stdout
    finally:
        if proc.returncode is None:
            # The shield outside the deadline: inside it, the shield would keep the deadline from firing, and a
            # client blocked on a full stdout pipe (after an error, nobody reads it) would be waited for forever.
            with trio.CancelScope(shield=True), trio.move_on_after(30) as scope:
                await proc.wait()
            if scope.cancelled_caught:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()
        if arg.startswith("@"):
            os.unlink(arg[1:])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]
