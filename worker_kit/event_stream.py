"""``EventStream``: a queue's server-sent events (``GET …/events``) as ``Event`` records, resumed across lost
connections from the last event seen (the ``Last-Event-ID`` header), so a reader never misses an event the queue's
log still holds.

It is an async iterator (``async for event in stream``) and an async context manager that closes the connection
when its block ends. It is a class rather than an async generator on purpose: nothing is held open across a
``yield``, and whatever interrupts a read (a cancel, a timeout, a broken connection) closes that connection before
it propagates, so the next read simply reconnects from the last event handed out. The retry rules are in
``client.py``'s docstring with the others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Self

import anyio
import httpx

from .errors import ServerUnreachable, StarqError, UnexpectedResponse, error_from_code
from .models import Event

if TYPE_CHECKING:
    from .http import HttpCore

log = logging.getLogger("starq.worker_kit.events")

CLOSE_TIMEOUT = 5.0  # seconds closing a broken connection may take, even while the reader is being cancelled


def transient(exc: StarqError) -> bool:
    """An error after which connecting again later can work: no answer, a 503 (the store is away, the server is
    shutting down), or an answer that is not Starq's (a proxy between)."""
    return isinstance(exc, (ServerUnreachable, UnexpectedResponse)) or exc.status == 503


class EventStream:
    """The events of one queue, from ``since`` on (``None``: from the moment it connects; ``0``: the whole log).

    ``last_id`` is the id of the last event handed out (or ``since``): where a new connection resumes.
    """

    def __init__(self, client: HttpCore, queue: str, path: str, *, since: int | None, idle_timeout: float) -> None:
        self.queue = queue
        self.last_id = since
        self._client = client
        self._path = path
        self._idle_timeout = idle_timeout
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._connected_once = False
        self._failures = 0  # attempts in a row that did not get a stream
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def aclose(self) -> None:
        """Closes the connection; the iteration then ends."""
        self._closed = True
        await self._disconnect()

    async def __anext__(self) -> Event:
        while not self._closed:
            if self._lines is None:
                await self._connect()
                continue
            try:
                event = await self._read_event(self._lines)
            except BaseException as exc:
                # Cancelled, or the connection broke in the middle of an event: drop the connection either way,
                # so that the next read starts afresh from the last event handed out.
                await self._disconnect()
                if self._closed and isinstance(exc, Exception):
                    raise StopAsyncIteration from None  # closed by another task while this one read
                if isinstance(exc, httpx.TransportError):
                    await self._pause(f"connection lost ({exc.__class__.__name__})")
                    continue
                raise
            if event is None:
                await self._disconnect()
                await self._pause("the server ended the stream")
                continue
            if event.kind == "error":
                await self._disconnect()
                error = error_from_code(str(event.data.get("error", "")), str(event.data.get("detail", "")))
                if transient(error):
                    await self._pause(error.detail)
                    continue
                self._closed = True
                raise error
            if event.kind == "dropped":
                # Those events are gone: resuming from before them would only be told so again.
                oldest = int(event.data.get("oldest", 0))
                self.last_id = max(self.last_id or 0, oldest - 1)
            elif event.id is not None:
                self.last_id = event.id
            return event
        raise StopAsyncIteration

    async def _connect(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        try:
            response = await self._client.open_stream(self._path, headers=headers, read_timeout=self._idle_timeout)
        except StarqError as exc:
            if not transient(exc):
                raise
            if not self._connected_once and self._failures + 1 >= self._client.retry.attempts:
                raise  # never connected: fail as any read does, instead of waiting for a server that may not exist
            await self._pause(exc.detail)
            return
        if self._closed:  # closed by another task while connecting
            await response.aclose()
            return
        self._response, self._lines = response, response.aiter_lines()
        if self._failures:
            log.info("event stream of queue %s: reconnected after event %s", self.queue, self.last_id)
        self._connected_once = True
        self._failures = 0

    async def _read_event(self, lines: AsyncIterator[str]) -> Event | None:
        """The next event of the stream (comments skipped), or None at its end (the SSE format: fields up to a
        blank line; ``data`` lines joined with newlines)."""
        event_id: int | None = None
        kind = ""
        data: list[str] = []
        async for line in lines:
            if not line:
                if data:
                    return _event(event_id, kind, data)
                event_id, kind = None, ""  # a block without data is not an event
                continue
            if line.startswith(":"):
                continue  # a comment: the greeting, or a keep-alive
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
            elif name == "id":
                event_id = int(value) if value.isdigit() else None
        return None

    async def _disconnect(self) -> None:
        response, self._response, self._lines = self._response, None, None
        if response is not None:
            # Shielded: a reader that is being cancelled must still not leave the connection open.
            with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await response.aclose()

    async def _pause(self, why: str) -> None:
        delay = self._client.retry.backoff.delay(self._failures)
        self._failures += 1
        log.log(
            logging.WARNING if self._failures == 1 else logging.DEBUG,
            "event stream of queue %s: %s; reconnecting after event %s in %.1f s",
            self.queue,
            why,
            self.last_id,
            delay,
        )
        await anyio.sleep(delay)


def _event(event_id: int | None, kind: str, data: list[str]) -> Event:
    text = "\n".join(data)
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise UnexpectedResponse(f"an event's data is not a JSON object: {text[:200]!r}")
    return Event(id=event_id, kind=kind or "message", data=value)
