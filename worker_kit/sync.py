"""A blocking ``StarqClient`` for code without an event loop: Django and Flask views, scripts, Celery-style tasks.

    from starq.worker_kit.sync import StarqClient

    with StarqClient("http://localhost:8000", "dev-key") as client:
        job = client.submit("emails", {"to": "ada@example.com"})
        print(client.wait("emails", job.id, timeout=30).result)

It has every method of the async ``starq.worker_kit.StarqClient``, with the same arguments, the same answers and
the same errors, and no ``await``: each method *is* the async one, run to its end in an event loop that the
client keeps in a thread of its own (an anyio blocking portal, asyncio by default). So the retry rules, the
error classes and the defaults are those of the async client, declared once; a test checks that no method of
one is missing from the other.

One client may be shared by many threads (a web server's): their calls run side by side in its loop, over one
connection pool. Create it once (at startup, or module level) and ``close()`` it (or use ``with``); a client
never closed does not keep the process from exiting (its thread is a daemon). Do not call it from a coroutine:
it would block that event loop; use the async client there.

``iter_jobs`` and ``events`` return a ``BlockingIterator``: a plain iterator that fetches each item through the
loop, closed by ``close()`` or at the end of a ``with`` block. If the calling thread is interrupted (Ctrl-C)
while it waits, the call in the loop is cancelled too, as an async caller's would be.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Concatenate, Generic, ParamSpec, Self, TypeVar, Unpack

import anyio.from_thread

from . import client as async_client
from .http import ClientOptions
from .protocol import DEFAULT_URL

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

AsyncClient = async_client.StarqClient


def _blocking(method: Callable[Concatenate[AsyncClient, P], Awaitable[R]]) -> Callable[Concatenate[StarqClient, P], R]:
    """The blocking twin of an async method: same name, signature (``__wrapped__``) and docstring."""

    @functools.wraps(method)
    def call(self: StarqClient, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(functools.partial(method, self._client, *args, **kwargs))

    return call


def _blocking_iterator(
    method: Callable[Concatenate[AsyncClient, P], AsyncIterator[T]],
) -> Callable[Concatenate[StarqClient, P], BlockingIterator[T]]:
    """The blocking twin of a method that returns an async iterator (an async generator, an event stream)."""

    @functools.wraps(method)
    def call(self: StarqClient, *args: P.args, **kwargs: P.kwargs) -> BlockingIterator[T]:
        return BlockingIterator(self, method(self._client, *args, **kwargs))

    return call


class BlockingIterator(Generic[T]):
    """An async iterator of the client's, read from a thread: ``for item in it`` (each ``next`` waits in the
    client's loop); ``close()`` or ``with`` ends it and closes what it holds open (an event stream's connection)."""

    def __init__(self, client: StarqClient, iterator: AsyncIterator[T]) -> None:
        self._client = client
        self._iterator = iterator
        self._done = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        found, item = self._client._run(self._next)
        if not found:
            self._done = True
            raise StopIteration
        return item  # type: ignore[return-value]  # found: an item

    async def _next(self) -> tuple[bool, T | None]:
        # StopAsyncIteration must not cross the thread boundary (a coroutine may not raise it through a future).
        try:
            return True, await self._iterator.__anext__()
        except StopAsyncIteration:
            return False, None

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            self._client._run(aclose)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class StarqClient:
    """A blocking client for one Starq server: ``with StarqClient(url, api_key) as client:``.

    Args:
        url, api_key, options: as for the async ``StarqClient`` (``options``: ``ClientOptions``).
        backend: the event loop its thread runs, ``"asyncio"`` (default) or ``"trio"``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        backend: str = "asyncio",
        **options: Unpack[ClientOptions],
    ) -> None:
        self._client = AsyncClient(url, api_key, **options)
        self.url, self.timeout, self.retry = self._client.url, self._client.timeout, self._client.retry
        self._loop = contextlib.ExitStack()
        self._portal = self._loop.enter_context(
            anyio.from_thread.start_blocking_portal(backend, name=f"starq-client-{id(self):x}")
        )
        self._closed = False

    def _run(self, func: Callable[[], Awaitable[R]]) -> R:
        if self._closed:
            raise RuntimeError("this StarqClient is closed")
        future = self._portal.start_task_soon(func)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (KeyboardInterrupt): cancel the call in the loop as well; else a no-op
            raise

    def close(self) -> None:
        """Closes the connection pool and stops the client's thread. Closing twice does nothing."""
        if self._closed:
            return
        try:
            self._run(self._client.aclose)
        finally:
            self._closed = True
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The async client's public methods, one line each (tests/worker_kit/test_sync_client.py checks that none is
    # missing). Not here: ``aclose`` (``close``) and ``open_stream`` (an open response belongs to the loop; use
    # ``events``).

    request = _blocking(AsyncClient.request)
    # meta
    health = _blocking(AsyncClient.health)
    openapi = _blocking(AsyncClient.openapi)
    # queues
    create_queue = _blocking(AsyncClient.create_queue)
    list_queues = _blocking(AsyncClient.list_queues)
    get_queue = _blocking(AsyncClient.get_queue)
    update_queue = _blocking(AsyncClient.update_queue)
    delete_queue = _blocking(AsyncClient.delete_queue)
    pause = _blocking(AsyncClient.pause)
    resume = _blocking(AsyncClient.resume)
    retry_dead = _blocking(AsyncClient.retry_dead)
    stats = _blocking(AsyncClient.stats)
    # jobs
    submit = _blocking(AsyncClient.submit)
    submit_many = _blocking(AsyncClient.submit_many)
    submit_encoded = _blocking(AsyncClient.submit_encoded)
    list_jobs = _blocking(AsyncClient.list_jobs)
    iter_jobs = _blocking_iterator(AsyncClient.iter_jobs)
    get_job = _blocking(AsyncClient.get_job)
    claim = _blocking(AsyncClient.claim)
    complete = _blocking(AsyncClient.complete)
    fail = _blocking(AsyncClient.fail)
    extend = _blocking(AsyncClient.extend)
    release = _blocking(AsyncClient.release)
    ack = _blocking(AsyncClient.ack)
    cancel = _blocking(AsyncClient.cancel)
    retry_job = _blocking(AsyncClient.retry_job)
    promote = _blocking(AsyncClient.promote)
    bulk = _blocking(AsyncClient.bulk)
    purge = _blocking(AsyncClient.purge)
    progress = _blocking(AsyncClient.progress)
    wait = _blocking(AsyncClient.wait)
    # workflows
    get_batch = _blocking(AsyncClient.get_batch)
    events = _blocking_iterator(AsyncClient.events)
    # schedules
    create_schedule = _blocking(AsyncClient.create_schedule)
    list_schedules = _blocking(AsyncClient.list_schedules)
    get_schedule = _blocking(AsyncClient.get_schedule)
    update_schedule = _blocking(AsyncClient.update_schedule)
    pause_schedule = _blocking(AsyncClient.pause_schedule)
    resume_schedule = _blocking(AsyncClient.resume_schedule)
    delete_schedule = _blocking(AsyncClient.delete_schedule)


__all__ = ["BlockingIterator", "StarqClient"]
