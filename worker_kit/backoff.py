"""Exponential backoff with jitter, shared by the client's request retries and the worker's reconnect loop."""

from __future__ import annotations

import random

import attrs


@attrs.frozen
class Backoff:
    """Delays that double from ``base`` up to ``cap`` seconds, each drawn at random from its upper half.

    "Equal jitter": half of each delay is fixed so a retry never comes back at once, and half is random so many
    clients that lost the server together do not all return in the same instant.
    """

    base: float = 0.1
    cap: float = 10.0

    def delay(self, attempt: int) -> float:
        """The pause before retry number ``attempt`` (0 = the first retry)."""
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@attrs.frozen
class RetryPolicy:
    """How a ``StarqClient`` retries a request whose answer never came (or came as 503).

    Attributes:
        attempts: tries in all for one call (1 = never retry).
        backoff: the pauses between tries.
    """

    attempts: int = 4
    backoff: Backoff = Backoff(0.1, 2.0)


NO_RETRY = RetryPolicy(attempts=1)
