"""When to start a dead process again, and when to stop trying: the policy of the embedded store's keeper and of
the supervisor of worker processes.

A process that dies now and then is restarted after a short pause; one that keeps dying (its data folder is
full, its store is gone for good, its configuration cannot work) is not restarted forever: after ``MAX_RESTARTS``
exits within ``WINDOW_SECONDS`` the server gives up and exits non-zero, so that a process supervisor (systemd,
Docker, Kubernetes) takes over and a person sees why.
"""

from __future__ import annotations

import time
from collections import deque

MAX_RESTARTS = 5
WINDOW_SECONDS = 60.0
# The pause before each restart: the n-th exit within the window waits RESTART_DELAYS[n - 1] seconds.
RESTART_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


class GaveUp(Exception):
    """A process exited too often in a short time; the server stops instead of trying again."""


class RestartPolicy:
    def __init__(self, what: str) -> None:
        self.what = what  # named in the error: "the embedded store", "worker processes"
        self._exits: deque[float] = deque()

    def pause_after_exit(self, how: str) -> float:
        """Records an exit (``how``: its exit status, for the error) and returns how long to wait before the
        restart; raises GaveUp past the limit."""
        now = time.monotonic()
        self._exits.append(now)
        while self._exits and self._exits[0] < now - WINDOW_SECONDS:
            self._exits.popleft()
        if len(self._exits) > MAX_RESTARTS:
            raise GaveUp(
                f"{self.what} exited {len(self._exits)} times within {WINDOW_SECONDS:.0f} s ({how}); giving up"
            )
        return RESTART_DELAYS[min(len(self._exits), len(RESTART_DELAYS)) - 1]
