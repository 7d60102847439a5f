"""Readers of queues' event logs (``GET …/events``), fed by one read of the store per queue and change.

Each queue with readers in this process has one ``_Feed``: when the hub says the queue's log grew (the
"events" channel), or once a second in case a notification was lost, the feed reads the new events once and
hands them to every reader's buffer. A reader that resumes from an earlier event (``since``) first reads the
log itself from there, then goes on with what the feed hands it; one that falls more than READER_BUFFER events
behind (a slow client) goes back to reading the log itself, and learns from a ``Dropped`` what it missed, if
the log's cap dropped events it had not seen.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator

import attrs
import trio

from starq.worker_kit.errors import QueueNotFound, StarqError

from .engine.engine import Engine
from .engine.models import Event
from .hub_part import HubPart

log = logging.getLogger("starq.events")

PAGE = 500  # events per read of the log
READER_BUFFER = 10_000  # events a reader may lag behind its feed before it reads the log itself again
SAFETY_POLL_SECONDS = 1.0


@attrs.frozen
class Dropped:
    """Events numbered after ``after`` and before ``oldest`` were dropped from the log before the reader saw
    them (the queue's events_max)."""

    after: int
    oldest: int


@attrs.define(eq=False)
class _Reader:
    cursor: int  # the number of the last event it has
    buffer: deque[Event] = attrs.Factory(deque)
    wake: trio.Event = attrs.Factory(trio.Event)
    behind: bool = False  # it must read the log itself (it resumed, or its buffer overflowed)
    error: StarqError | None = None


@attrs.define(eq=False)
class _Feed:
    queue: str
    cursor: int
    readers: set[_Reader] = attrs.Factory(set)
    wake: trio.Event = attrs.Factory(trio.Event)


class EventFeeds(HubPart):
    """Its nursery hosts one feed per queue with readers; the hub calls ``notify`` for each "events" message."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._feeds: dict[str, _Feed] = {}

    @property
    def readers(self) -> int:
        return sum(len(feed.readers) for feed in self._feeds.values())

    def notify(self, queue: str) -> None:
        feed = self._feeds.get(queue)
        if feed is not None:
            feed.wake.set()

    def notify_all(self) -> None:
        for feed in self._feeds.values():
            feed.wake.set()

    def close(self) -> None:
        """Shutdown: every stream ends."""
        super().close()
        for feed in self._feeds.values():
            feed.wake.set()
            for reader in feed.readers:
                reader.wake.set()

    async def follow(self, queue: str, since: int | None, idle: float) -> AsyncIterator[Event | Dropped | None]:
        """The queue's events from now on (``since`` None), or after event ``since`` (0: the whole log), as they
        happen; ``None`` after each ``idle`` seconds without one (for a keep-alive). Ends when the server
        shuts down; raises QueueNotFound when the queue does not exist or is deleted."""
        feed = self._feeds.get(queue)
        if feed is None:
            with trio.CancelScope(shield=True):
                bounds = await self._engine.read_events(queue)
            feed = self._feeds.get(queue)
            if feed is None:
                feed = self._start(queue, bounds.last)
        reader = _Reader(cursor=feed.cursor if since is None else since, behind=since is not None)
        feed.readers.add(reader)
        try:
            while not self._closed:
                reader.wake = trio.Event()
                if self._feeds.get(queue) is not feed:
                    # The feed ended as this reader joined or caught up: it joins (or starts) the current one.
                    feed.readers.discard(reader)
                    feed = self._feeds.get(queue) or self._start(queue, reader.cursor)
                    feed.readers.add(reader)
                    reader.behind = True
                if reader.behind:
                    async for item in self._catch_up(queue, reader):
                        yield item
                while reader.buffer and not reader.behind:
                    event = reader.buffer.popleft()
                    if event.number > reader.cursor:
                        reader.cursor = event.number
                        yield event
                if reader.error is not None:
                    raise reader.error
                if reader.behind or self._closed:
                    continue
                with trio.move_on_after(idle) as timer:
                    await reader.wake.wait()
                if timer.cancelled_caught:
                    yield None
        finally:
            feed.readers.discard(reader)

    async def _catch_up(self, queue: str, reader: _Reader) -> AsyncIterator[Event | Dropped]:
        """Reads the log from the reader's cursor to its end; says so first if events it never saw are gone."""
        reader.buffer.clear()
        reader.behind = False
        first_page = True
        while True:
            with trio.CancelScope(shield=True):
                page = await self._engine.read_events(queue, reader.cursor, PAGE)
            if reader.cursor > page.last:
                reader.cursor = page.last  # a number from the future (the queue was made anew): from now on
                return
            if first_page and reader.cursor > 0 and page.first > reader.cursor + 1:
                yield Dropped(reader.cursor, page.first)
            first_page = False
            for event in page.events:
                reader.cursor = event.number
                yield event
            if len(page.events) < PAGE:
                return

    def _start(self, queue: str, cursor: int) -> _Feed:
        feed = _Feed(queue, cursor)
        self._feeds[queue] = feed
        assert self._nursery is not None, "EventFeeds.run() is not running"
        self._nursery.start_soon(self._run_feed, feed)
        return feed

    async def _run_feed(self, feed: _Feed) -> None:
        failing = False
        try:
            while not self._closed:
                if not feed.wake.is_set():
                    with trio.move_on_after(SAFETY_POLL_SECONDS):
                        await feed.wake.wait()
                feed.wake = trio.Event()
                if not feed.readers:
                    return
                try:
                    with trio.CancelScope(shield=True):
                        page = await self._engine.read_events(feed.queue, feed.cursor, PAGE)
                except QueueNotFound as exc:
                    for reader in feed.readers:
                        reader.error = exc
                        reader.wake.set()
                    return
                except StarqError as exc:
                    if not failing:
                        log.warning("reading the events of queue %s failed (%s); retrying", feed.queue, exc)
                        failing = True
                    continue
                failing = False
                feed.cursor = min(feed.cursor, page.last)  # the log began anew (the queue was made again)
                self._hand(feed, page.events)
                if len(page.events) == PAGE:
                    feed.wake.set()  # more to read
        finally:
            if self._feeds.get(feed.queue) is feed:
                del self._feeds[feed.queue]
            for reader in feed.readers:  # a reader joining as the feed ends reads the log itself
                reader.behind = True
                reader.wake.set()

    @staticmethod
    def _hand(feed: _Feed, events: list[Event]) -> None:
        if not events:
            return
        feed.cursor = events[-1].number
        for reader in feed.readers:
            if len(reader.buffer) + len(events) > READER_BUFFER:
                reader.behind = True
            else:
                reader.buffer.extend(events)
            reader.wake.set()
