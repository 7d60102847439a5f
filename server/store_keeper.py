"""Keeping the embedded store alive: a store process that exits is started again on its data folder.

The store replays its AOF on start, so every acknowledged job is back; meanwhile requests get a prompt 503, parked
long-polls stay parked, and the store client reconnects by itself once the socket answers again. A store that
keeps dying (its data folder is full, its AOF is damaged) is not restarted forever (``restarts.py``).
"""

from __future__ import annotations

import logging
import os
import time

import trio

from .embedded import EmbeddedStore
from .restarts import GaveUp, RestartPolicy

log = logging.getLogger("starq.store")


class StoreGaveUp(GaveUp):
    """The embedded store exited too often in a short time; the server stops instead of trying again."""


class StoreKeeper:
    """Restarts ``store`` whenever it exits, with a growing pause, until it exits too often."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self._policy = RestartPolicy("the embedded store")
        self.restarts = 0

    def _pause_after_exit(self) -> float:
        """Records an exit and returns how long to wait before restarting; raises StoreGaveUp past the limit."""
        process = self.store.process
        code = process.returncode if process is not None else None
        try:
            pause = self._policy.pause_after_exit(f"last exit code {code}")
        except GaveUp as exc:
            raise StoreGaveUp(f"{exc}. Its log: {self.store.log_path}. {self.store.last_words()[-500:]}") from None
        log.warning(
            "the embedded store exited (code %s); restarting it on %s in %.1f s", code, self.store.data_dir, pause
        )
        return pause

    def _restarted(self) -> None:
        self.restarts += 1
        assert self.store.process is not None
        log.info("embedded store restarted (pid %d, restart %d): serving again", self.store.process.pid, self.restarts)

    async def keep_forever(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watches the store from a Trio loop on the main thread (the store is the main thread's child, so that
        it never outlives the server); raises StoreGaveUp."""
        task_status.started()
        while True:
            await _wait_for_exit(self.store)
            await trio.sleep(self._pause_after_exit())
            self.store.spawn()
            try:
                await trio.to_thread.run_sync(self.store.wait_ready)
            except RuntimeError as exc:
                log.warning("the restarted store did not come up: %s", exc)
                continue
            self._restarted()

    def check(self) -> None:
        """For a synchronous supervisor loop: restarts the store if it has exited (blocking until it answers);
        raises StoreGaveUp."""
        if self.store.running:
            return
        time.sleep(self._pause_after_exit())
        self.store.spawn()
        try:
            self.store.wait_ready()
        except RuntimeError as exc:
            log.warning("the restarted store did not come up: %s", exc)
            return
        self._restarted()


async def _wait_for_exit(store: EmbeddedStore) -> None:
    """Returns once the store's process has exited (and is reaped): a pidfd turns readable then (Linux 5.3+)."""
    process = store.process
    assert process is not None
    if process.poll() is not None:
        return  # already exited and reaped (while it was being waited for at start)
    fd = os.pidfd_open(process.pid)  # only this task reaps it, so the pid cannot be reused meanwhile
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)
    process.wait()
