"""What the engine reports as it works, for whoever counts it (the server's metrics, ``server/metrics.py``).

The engine calls these at the points where the facts are known exactly (from the Lua library's own replies);
this base class does nothing, for an engine nobody watches.
"""

from __future__ import annotations

from collections.abc import Sequence

from .models import Job


class Observer:
    def store_call(self, operation: str, seconds: float, unavailable: bool) -> None:
        """One round trip to the store took ``seconds`` (``unavailable``: it failed for want of the store)."""

    def submitted(self, queue: str, fresh: int) -> None:
        """``fresh`` jobs were stored (skipped duplicates excluded)."""

    def claimed(self, queue: str, jobs: Sequence[Job]) -> None:
        """Jobs were handed out."""

    def released(self, queue: str, jobs: Sequence[Job], released: int) -> None:
        """Claimed jobs that never reached their client went back (``released`` of ``jobs`` were still held)."""

    def completed(self, queue: str, job_ids: Sequence[str]) -> None:
        """Jobs were reported completed."""

    def failed(self, queue: str, job_id: str, status: str) -> None:
        """A failed attempt was reported; ``status`` is the job's new one (``failed``: dead-lettered)."""

    def reclaimed(self, queue: str, count: int) -> None:
        """Jobs whose lease expired were taken back by the maintenance loop."""

    def limited(self, queue: str, rate: bool, concurrency: bool) -> None:
        """A claim got fewer jobs than it asked for because of the queue's rate limit or its concurrency."""

    def maintenance_lag(self, queue: str, lag_ms: dict[str, int]) -> None:
        """How long the oldest due item of each kind (MAINTENANCE_KINDS) waited after a tick of the queue."""

    def schedule_ran(self, queue: str, name: str) -> None:
        """A schedule submitted its job for a due time."""
