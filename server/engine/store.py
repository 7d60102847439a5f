"""Opening the Redis client, with the two coredis 6.9 pool fixes Starq relies on.

coredis 6.9 loses a pool slot for good whenever a leased connection becomes unusable (a server restart, a
killed connection, a stream timeout), and a task cancelled while waiting for a slot swallows the next
release. After a Redis restart the first bug alone shrinks the pool until every command hangs. Starq never
cancels an in-flight command from a request, but store faults happen, so the pool must survive them:
``SlotKeepingPool`` gives the slot back and ``_get_forgetting_cancelled`` removes a cancelled waiter.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import attrs
import coredis
import coredis._concurrency
import coredis._telemetry
import coredis.connection
import coredis.connection._request
import coredis.exceptions
import coredis.pool
import coredis.pool._statistics
import trio
from anyio import Event
from coredis._concurrency import QueueFull
from coredis.retry import NoRetryPolicy

from ..settings import Settings

# The bound (seconds) on each step of a store round trip (connecting, waiting for a pooled connection, waiting
# for the reply): a stalled or unreachable store turns into a 503 within it, never into a hung request. Every
# call of the Lua library is bounded work, far below it. Declared with the server's settings (store_timeout).
DEFAULT_TIMEOUT: float = Settings().store_timeout


class SlotKeepingPool(coredis.ConnectionPool):
    """A pool whose size never shrinks when a connection dies."""

    reply_timer: ReplyTimer | None = None  # set by open_redis

    def lease_ready(self) -> coredis.connection.BaseConnection | None:
        """An idle live connection at once, or None when taking one means waiting or connecting.

        ``get_connection`` does the same for an idle connection through an anyio lock (held by a waiter while
        it waits), a timeout scope and two telemetry context managers; with the lean FCALL below, skipping
        them took a claim 1 + complete loop from ~280 to ~160 µs of client CPU per job. Only a pool nobody
        waits on is served here, so waiters keep their turn; the rest goes through ``get_connection``.
        """
        queue = self._available_connections
        if queue._getters or queue._lock.locked() or not queue._queue:
            return None
        connection = queue._queue[-1]
        if connection is None or not connection.reusable:
            return None
        queue._queue.pop()
        self.statistics.connection_leased(connection)
        return connection

    def release(self, connection):
        self.statistics.connection_released(connection)
        if connection.usable:
            self._available_connections.put_nowait(connection)
        else:
            connection.invalidate()
            # An empty slot: the next get_connection() opens a fresh connection in its place.
            self._available_connections.put_nowait(None)


async def _get_forgetting_cancelled(self):  # pragma: no cover - exercised through the pool
    async with self._lock:
        while self.empty():
            ready = Event()
            self._getters.append(ready)
            try:
                await ready.wait()
            except BaseException:
                # Cancelled while waiting: leave no dead Event behind to swallow the next release.
                if ready in self._getters:
                    self._getters.remove(ready)
                raise
        item = self._queue.pop()
        if self._putters and not self.full():
            self._putters.popleft().set()
        return item


# The queue fix and SlotKeepingPool.lease_ready use private parts of coredis 6.9's pool queue; a newer
# coredis may have fixed the bug or changed those parts.
_COREDIS_6_9 = coredis.__version__.split(".")[:2] == ["6", "9"]


def _install_queue_fix() -> None:
    if _COREDIS_6_9:
        coredis._concurrency.Queue.get = _get_forgetting_cancelled  # type: ignore[method-assign]


_install_queue_fix()


def _install_telemetry_once() -> None:
    """coredis asks for its telemetry provider three times per command (the request, the connection's lease and
    its release), and each time reads the COREDIS_OTEL_ENABLED environment variable again (~4 µs per command).
    The environment of a running server does not change: when telemetry is off at start, those calls get the
    no-op provider at once. (Set COREDIS_OTEL_ENABLED before starting the server to have coredis' spans.)"""
    if not _COREDIS_6_9 or coredis.Config.otel_enabled:
        return
    noop = coredis._telemetry.get_telemetry_provider()

    def provider() -> Any:
        return noop

    for module in (coredis.connection._request, coredis.pool._statistics):
        module.get_telemetry_provider = provider  # type: ignore[attr-defined]


_install_telemetry_once()


class _Reply:
    """The reply to one FCALL sent on a pooled connection: what coredis' connection reader needs of a request
    (it hands each reply, or the error that ended the connection, to the oldest one it holds), and no more.

    coredis' own ``Request`` is a dataclass with an anyio Event, a weak proxy to its connection, statistics and
    a telemetry hook, awaited through an anyio cancel scope. This one wakes its caller's task directly, and its
    deadline is kept by the client's ``ReplyTimer`` rather than by a cancel scope of its own (a trio deadline
    scope is ~6 µs of CPU per store call)."""

    __slots__ = ("command", "current_encoding", "deadline", "done", "error", "task", "value")
    current_decode = True  # the server's clients decode replies to strings (open_redis)

    def __init__(self, command: bytes, encoding: str | None) -> None:
        self.command = command
        self.current_encoding = encoding
        self.deadline = math.inf
        self.done = False
        self.task: trio.lowlevel.Task | None = None
        self.value: Any = None
        self.error: BaseException | None = None

    @property
    def complete(self) -> bool:
        return self.done

    def consume(self, response: Any) -> None:
        if isinstance(response, BaseException):
            self.fail(response)
        else:
            self._finish(response, None)

    def fail(self, error: BaseException) -> None:
        self._finish(None, error)

    def time_out(self, timeout: float | None) -> None:
        # As coredis answers a reply that did not come in time: the connection stays usable (replies are
        # matched in order, so this one's reply, when it comes, is read and dropped).
        self._finish(None, TimeoutError(f"{self.command.decode()} timed out after {timeout} seconds"))

    def _finish(self, value: Any, error: BaseException | None) -> None:
        if self.done:
            return  # the reply to a call that timed out: dropped
        self.done = True
        self.value = value
        self.error = error
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _abandon(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self.task = None  # the caller was cancelled: the reply, when it comes, is dropped
        return trio.lowlevel.Abort.SUCCEEDED

    async def result(self, timed: bool, timeout: float | None) -> Any:
        """The reply's value; ``timed``: a ``ReplyTimer`` keeps its deadline, else a cancel scope here does."""
        if not self.done:
            self.task = trio.lowlevel.current_task()
            if timed:
                await trio.lowlevel.wait_task_rescheduled(self._abandon)
            else:
                with trio.move_on_after(timeout if timeout is not None else math.inf):
                    await trio.lowlevel.wait_task_rescheduled(self._abandon)
                if not self.done:
                    self.time_out(timeout)
        if self.error is not None:
            raise self.error
        value, self.value = self.value, None  # a reply waiting for the timer's next sweep holds no data
        return value


# How often at most a ReplyTimer wakes while every pending reply is far from its deadline, to forget answered
# ones (those it holds until then cost memory, nothing else).
SWEEP_SECONDS = 0.25


class ReplyTimer:
    """Fails the replies of a client's pooled FCALLs that are not answered within its timeout, from one task,
    at each reply's deadline.

    Every call of a client has the same timeout, so the replies' deadlines come in the order they were sent:
    only the oldest unanswered one can be due. A task that sleeps until that deadline replaces a deadline
    scope per call (its entry in trio's deadline heap, a cancel status, its recalculation on exit)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._pending: deque[_Reply] = deque()

    def watch(self, reply: _Reply) -> None:
        reply.deadline = trio.current_time() + self.timeout
        self._pending.append(reply)

    async def run(self) -> None:
        pending = self._pending
        while True:
            now = trio.current_time()
            while pending and (pending[0].done or pending[0].deadline <= now):
                reply = pending.popleft()
                if not reply.done:
                    reply.time_out(self.timeout)
            wake = now + SWEEP_SECONDS
            if pending and pending[0].deadline < wake:
                wake = pending[0].deadline
            await trio.sleep_until(wake)


@asynccontextmanager
async def _timing_replies(pool: Any, timeout: float) -> AsyncIterator[None]:
    """Runs a ``ReplyTimer`` for ``pool``'s FCALLs while the block runs.

    The timer is a trio system task, not a task of a nursery around the block: such a nursery would hand on
    whatever the block raises wrapped in an ExceptionGroup."""
    timer = ReplyTimer(timeout)
    scope = trio.CancelScope()

    async def run() -> None:
        with scope:
            await timer.run()

    trio.lowlevel.spawn_system_task(run, name="starq store reply timer")
    pool.reply_timer = timer
    try:
        yield
    finally:
        pool.reply_timer = None
        scope.cancel()


def _send_fcall(connection: Any, command: bytes, function: str, keys: Sequence[str], args: Sequence[str]) -> _Reply:
    """Queues one FCALL on ``connection`` as ``create_request`` does (its usability check, the same write buffer
    and reply queue), with a ``_Reply`` in place of coredis' request."""
    if not ((not connection._handshake_attempted and connection.transport_healthy) or connection.usable):
        raise coredis.exceptions.ConnectionError("Connection not usable") from connection._last_error
    reply = _Reply(command, connection._encoding)
    connection._write_buffer_in.send_nowait([(command, (function, len(keys), *keys, *args))])
    connection._requests.append(reply)
    return reply


async def fcall(
    redis: coredis.Redis | coredis.RedisCluster,
    function: str,
    keys: Sequence[str],
    args: Sequence[str],
    *,
    readonly: bool = False,
) -> Any:
    """FCALL (or FCALL_RO) with the reply as the server sent it, decoded to strings.

    On one server (or a Sentinel primary) the command goes straight onto a pooled connection, which is what
    ``Redis.execute_command`` does for a non-blocking command after its per-command layers: a telemetry span,
    the retry policy (ours retries nothing), a ``CommandRequest`` with its argument serializer, a server
    version check, client-side cache bookkeeping and a reply callback (the identity for FCALL). Starq uses
    none of those; they read six environment variables per command among other things, and skipping them
    took a claim 1 + complete loop from ~445 to ~280 µs of client CPU per job. The connection is leased and
    given back exactly as coredis does it: given back before the reply is awaited (replies are matched to
    requests in order on the connection, so a caller cancelled while waiting leaves the connection usable
    and the slot returned). With coredis 6.9 the command is queued on the connection by ``_send_fcall``, and
    the reply's deadline (the connection's stream timeout) is kept by the pool's ``ReplyTimer`` when
    ``open_redis`` gave it one with that timeout.
    A cluster client keeps coredis' own path, which routes by key and follows redirections.
    """
    if not isinstance(redis, coredis.Redis):
        call = redis.fcall_ro if readonly else redis.fcall
        return await call(function, keys=keys, args=args)
    pool = redis.connection_pool
    lease_ready = getattr(pool, "lease_ready", None) if _COREDIS_6_9 else None
    connection = (lease_ready() if lease_ready else None) or await pool.get_connection()
    command = b"FCALL_RO" if readonly else b"FCALL"
    try:
        if _COREDIS_6_9:
            reply = _send_fcall(connection, command, function, keys, args)
        else:
            request = connection.create_request(command, function, len(keys), *keys, *args)
    finally:
        pool.release(connection)
    if _COREDIS_6_9:
        timeout = connection._stream_timeout
        timer: ReplyTimer | None = getattr(pool, "reply_timer", None)
        if timer is not None and timer.timeout == timeout:
            timer.watch(reply)
            return await reply.result(True, timeout)
        return await reply.result(False, timeout)
    return await request


# A client of one server (or a Sentinel-managed primary) or of a cluster, decoding replies to strings.
Store = coredis.Redis[str] | coredis.RedisCluster[str]

CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"


@attrs.frozen
class StoreAddress:
    """Where the store is: one server (``redis://``, ``rediss://``, ``unix://``), a Redis Cluster
    (``redis+cluster://[user:pass@]host:port,host:port``) or a Sentinel-managed primary
    (``redis+sentinel://[user:pass@]host:port,host:port/primary-name[/db]``)."""

    kind: str  # "single", "cluster" or "sentinel"
    url: str = ""
    nodes: tuple[tuple[str, int], ...] = ()
    primary: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_store_url(url: str, *, cluster: bool = False) -> StoreAddress:
    """Reads a store URL; ``cluster`` (``--redis-cluster``) reads a ``redis://host:port,…`` URL as a cluster.

    Raises:
        ValueError: the URL cannot name a store, with a message that says why.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"the store URL {url!r} has no scheme (redis://, rediss://, unix://, "
            f"{CLUSTER_SCHEME}://, {SENTINEL_SCHEME}://)"
        )
    if cluster and scheme == "redis":
        scheme = CLUSTER_SCHEME
    if scheme in ("redis", "rediss", "unix"):
        if "," in rest:
            raise ValueError(f"a {scheme}:// URL names one server; use {CLUSTER_SCHEME}:// for several")
        return StoreAddress("single", url=url)
    if scheme not in (CLUSTER_SCHEME, SENTINEL_SCHEME):
        raise ValueError(f"unknown store URL scheme {scheme!r}")
    credentials, _, location = rest.rpartition("@")
    username = password = None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username, password = (unquote(user) or None, unquote(secret)) if has_password else (None, unquote(user))
    hosts, _, path = location.partition("/")
    nodes = []
    for item in filter(None, hosts.split(",")):
        host, colon, port = item.rpartition(":")
        if not colon or not port.isdigit() or not host:
            raise ValueError(f"store node {item!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError(f"a {scheme}:// URL needs at least one host:port")
    parts = [p for p in path.split("/") if p]
    if scheme == CLUSTER_SCHEME:
        if parts:
            raise ValueError("a cluster has only database 0: drop the path from the URL")
        return StoreAddress("cluster", nodes=tuple(nodes), username=username, password=password)
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"a {SENTINEL_SCHEME}:// URL ends with /<primary name>[/<db>]")
    return StoreAddress(
        "sentinel",
        nodes=tuple(nodes),
        primary=parts[0],
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=username,
        password=password,
    )


class SlotKeepingClusterPool(coredis.pool.ClusterConnectionPool):
    """The cluster pool with the same fix: a dead connection's slot is given back as an empty one.

    It also reports a node it cannot connect to, which coredis 6.9 does not: its layout is refreshed only
    after reported errors, so after a primary died and its replica took over, every command for that
    primary's slots kept failing to connect to the dead address, for good.
    """

    async def get_connection(self, node=None, primary=True, **options):
        try:
            return await super().get_connection(node, primary, **options)
        except coredis.exceptions.ConnectionError as exc:
            self.cluster_layout.report_errors(node, exc)
            raise

    def release(self, connection):
        self.statistics.connection_released(connection)
        queue = self._node_pool(connection.location)
        try:
            if connection.usable:
                queue.put_nowait(connection)
            else:
                connection.invalidate()
                queue.put_nowait(None)
        except QueueFull:
            pass


class SlotKeepingSentinelPool(coredis.SentinelConnectionPool):
    release = SlotKeepingPool.release
    reply_timer: ReplyTimer | None = None  # set by open_redis


@asynccontextmanager
async def open_redis(url: str, *, max_connections: int = 16, timeout: float = DEFAULT_TIMEOUT) -> AsyncIterator[Store]:
    """A decoded-string client (``Redis`` or ``RedisCluster``) over a bounded pool, with no client-side retries.

    Retries are off because coredis re-sends a write after a timeout without knowing whether it ran (one
    XADD became three in our tests); Starq's writes are made idempotent instead and errors reach the caller.
    A cluster client still follows MOVED/ASK redirections, which re-send nothing that ran.
    """
    address = parse_store_url(url)
    if address.kind == "cluster":
        cluster = coredis.RedisCluster(
            startup_nodes=[coredis.connection.TCPLocation(host, port) for host, port in address.nodes],
            username=address.username,
            password=address.password,
            max_connections=max_connections,
            # Per node, as with one server: coredis would otherwise divide the bound among the nodes.
            max_connections_per_node=True,
            pool_timeout=timeout,
            connection_pool_cls=SlotKeepingClusterPool,
            retry_policy=NoRetryPolicy(),
            stream_timeout=timeout,
            connect_timeout=timeout,
            decode_responses=True,
        )
        async with cluster:
            yield cluster
        return
    if address.kind == "sentinel":
        sentinel = coredis.Sentinel(
            sentinels=[coredis.connection.TCPLocation(host, port) for host, port in address.nodes],
            sentinel_kwargs={"connect_timeout": timeout, "stream_timeout": timeout},
            retry_policy=NoRetryPolicy(),
            stream_timeout=timeout,
            connect_timeout=timeout,
            decode_responses=True,
        )
        async with sentinel:
            primary = sentinel.primary_for(
                address.primary,
                connection_pool_class=SlotKeepingSentinelPool,
                db=address.db,
                username=address.username,
                password=address.password,
                max_connections=max_connections,
                timeout=timeout,
            )
            async with primary, _timing_replies(primary.connection_pool, timeout):
                yield primary
        return
    pool = SlotKeepingPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        stream_timeout=timeout,
        connect_timeout=timeout,
        decode_responses=True,
    )
    single = coredis.Redis(connection_pool=pool, retry_policy=NoRetryPolicy(), decode_responses=True)
    async with single, _timing_replies(pool, timeout):
        yield single
