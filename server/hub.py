"""What a server process keeps waiting on the store: parked claims, clients waiting for a job's outcome, readers
of event streams. One pub/sub subscription (``Engine.subscribe``) feeds all three, whatever their number.
"""

from __future__ import annotations

import logging

import trio

from .claims import ClaimBroker
from .engine.engine import Engine
from .event_feeds import EventFeeds
from .outcome_waits import OutcomeWaiters

log = logging.getLogger("starq.hub")

# After the subscription fails, wait this long (doubling up to the max) before subscribing again.
RESUBSCRIBE_MIN, RESUBSCRIBE_MAX = 0.1, 5.0


class Hub:
    """Run it with ``await nursery.start(hub.run)``; ``close`` at shutdown answers everything that waits."""

    def __init__(self, engine: Engine) -> None:
        self.claims = ClaimBroker(engine)
        self.outcomes = OutcomeWaiters(engine)
        self.events = EventFeeds(engine)
        self._engine = engine
        self._handlers = {"ready": self.claims.notify, "done": self.outcomes.notify, "events": self.events.notify}

    @property
    def closed(self) -> bool:
        """True once shutdown began; other long-lived responses (the dashboard's live stream) end on it too."""
        return self.claims.closed

    def close(self) -> None:
        self.claims.close()
        self.outcomes.close()
        self.events.close()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for part in (self.claims.run, self.outcomes.run, self.events.run, self._listen_forever):
                await nursery.start(part)
            task_status.started()

    def _missed_some(self) -> None:
        """Anything published while unsubscribed was missed: everything waiting looks once."""
        self.claims.notify_all()
        self.outcomes.recheck_all()
        self.events.notify_all()

    async def _listen_forever(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        delay = RESUBSCRIBE_MIN
        started = False
        while True:
            try:
                async with self._engine.subscribe() as messages:
                    if not started:
                        started = True
                        task_status.started()
                    self._missed_some()
                    delay = RESUBSCRIBE_MIN
                    async for channel, message in messages:
                        self._handlers[channel](message)
            except Exception as exc:
                log.warning("store notifications interrupted (%s); resubscribing in %.1f s", exc, delay)
            if not started:
                started = True
                task_status.started()
            await trio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_MAX)
