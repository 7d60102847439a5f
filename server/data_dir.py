"""The embedded store's data folder: private to the user, and owned by one ``starq serve`` at a time.

Two servers on one data folder would run two stores on one AOF and damage it, so a server takes an exclusive
``flock`` on ``starq.lock`` before it does anything else, and the embedded store inherits the lock: it is
released only once the server *and* its store are gone (a store outlives a server killed with SIGKILL by the
moment it takes to flush its AOF).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "starq.lock"
SOCKET_NAME = "store.sock"
LOG_NAME = "store.log"
# A unix socket path longer than this does not fit in sockaddr_un (108 bytes with the terminating NUL).
MAX_UNIX_PATH = 100
# How long a starting server waits for the lock when its holder has exited but its store is still stopping.
STORE_EXIT_WAIT = 10.0


class DataDirInUse(Exception):
    """Another ``starq serve`` holds the data folder."""

    def __init__(self, path: str, pid: int | None, stopping: bool = False) -> None:
        holder = f"pid {pid}" if pid else "pid unknown"
        if stopping:
            super().__init__(f"the data dir {path} is still held by the store of a stopped starq serve ({holder})")
        else:
            super().__init__(f"the data dir {path} is in use by another starq serve ({holder})")


def private_dir(path: Path) -> Path:
    """Creates ``path`` (and its parents) if needed and makes it accessible to its owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


@contextmanager
def lock_data_dir(path: str) -> Iterator[int]:
    """Holds the data folder ``path`` (as given by the user, for messages) exclusively; yields the lock's file
    descriptor, which a child (the store) may inherit to hold the lock with it.

    Raises:
        DataDirInUse: another server holds it.
    """
    data = private_dir(Path(path).resolve())
    fd = os.open(data / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, path)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield fd
    finally:
        os.close(fd)


def _acquire(fd: int, path: str) -> None:
    deadline = time.monotonic() + STORE_EXIT_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(fd)
            if holder is not None and alive(holder):
                raise DataDirInUse(path, holder) from None
            # The server that held it is gone; its store is still flushing and stopping.
            if time.monotonic() >= deadline:
                raise DataDirInUse(path, holder, stopping=True) from None
            time.sleep(0.1)


def _holder(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or "0") or None
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a negative ``pid`` names a process group, as for kill(2))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def socket_path(data_dir: Path) -> Path:
    """Where the store's unix socket goes: in the data folder, or, when that path is too long for a socket, in
    a private folder of this user's (``$XDG_RUNTIME_DIR`` or ``/tmp``, then ``starq-<uid>``) under a name
    derived from the data folder, so that each data folder keeps its own socket."""
    inside = data_dir / SOCKET_NAME
    if len(str(inside)) <= MAX_UNIX_PATH:
        return inside
    home = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"starq-{os.getuid()}"
    home.mkdir(mode=0o700, exist_ok=True)
    if home.is_symlink() or home.lstat().st_uid != os.getuid():
        raise PermissionError(f"{home} is not a private folder of this user's: remove it, or set XDG_RUNTIME_DIR")
    home.chmod(0o700)
    return home / f"{hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]}.sock"
