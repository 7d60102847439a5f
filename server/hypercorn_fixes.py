"""Focused changes to Hypercorn 0.18's trio worker, installed by ``install()`` before serving.

They matter on the Hypercorn path (``STARQ_HTTP_SERVER=hypercorn``). By default ``starq serve`` hands plain
HTTP/1.1 connections to Starq's own serving path (``server/http1``), which uses none of the patched methods.

The speed-ups are pinned to the Hypercorn version they were written against (``PINNED``): on another version
only the correctness fix (1) is installed, since the speed-ups replace private methods that may have changed.
Each has a test in ``tests/test_http_layer.py``.

1. **Connections that never close** (a bug with QuartTrio). QuartTrio cancels its request nursery when
   Hypercorn reports ``http.disconnect``, and Hypercorn reports it from inside the request task's final send.
   Hypercorn's own follow-up work in ``TCPServer.protocol_send`` (closing a ``Connection: close`` response,
   restarting the keep-alive idle timer) then runs in a cancelled scope and never happens. ``protocol_send``
   runs shielded: the socket write inside it was already shielded, so nothing new can block. Cancelling the
   request handler on disconnect (which long-polls rely on) is unchanged: it is the read loop, not a send,
   that notices the disconnect.
2. **One write per response** (``H11Protocol._send_h11_event``). Hypercorn writes the response head, each body
   chunk and the (usually empty) end of message separately: two or three ``send`` calls, locks and cancel
   scopes per response. The head is now held until the first body bytes (or the end of the message) and
   leaves with them; empty writes are skipped. The ASGI spec already lets a server hold the head until the
   first body message, and a streamed body still leaves chunk by chunk.
3. **One idle-timer task per connection** (``StarqTCPServer``). Hypercorn stops its keep-alive timer when a
   request arrives and starts a fresh task for it when the response is done: a task spawn, a cancellation
   and two lock round trips per request. Here one task per connection waits on a cancel scope whose deadline
   is moved instead; a request in flight just flips a flag. The timer also stops when the client closes the
   connection, where Hypercorn's kept the connection's task alive until the keep-alive timeout passed.

Fixes 2 and 3 are opt-in (``install(speedups=True)``), not what ``starq serve`` runs: they remove scheduler
passes from the send path, and ``DeliveryGuard`` (``server/api/delivery.py``) counts two scheduler passes after
a body write to tell a client that hung up from one that got its response. With them, a client that
half-closes just as its claim is answered is more often seen as gone although the bytes reached it, and its
jobs are handed out twice (``tests/api/test_http_claims.py::test_clients_hanging_up_mid_long_poll_lose_no_job``
fails with them). The benchmarks measure them (``benchmarks/apps.py``, kind ``fast``). On ``server/http1`` the
guard learns from the connection whether the client is gone and whether the write reached the kernel, so it
needs no such count there.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from math import inf

import h11
import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import tcp_server

log = logging.getLogger("starq.http")

PINNED = "0.18."
_MARK = "_starq_shielded"


def install(*, speedups: bool = False) -> None:
    """Installs fix 1, and with ``speedups`` fixes 2 and 3 too (idempotent). Call before ``hypercorn.trio.serve``."""
    _install_shield()
    _install_close_on_eof()
    if not speedups:
        return
    if not version("hypercorn").startswith(PINNED):
        log.warning("Hypercorn %s is not %sx: serving without Starq's HTTP speed-ups", version("hypercorn"), PINNED)
        return
    H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]
    hypercorn_run.TCPServer = StarqTCPServer  # type: ignore[misc]


# -- connections closed by their client close at once ------------------------------------------------------
# Hypercorn's read loop ends when the client closes its side, but its keep-alive timer keeps running in the
# connection's task group, so the closed connection (socket in CLOSE_WAIT, task, slot under
# STARQ_MAX_CONNECTIONS) lingers until keep_alive_timeout: 50 short-lived connections left 35 sockets open a
# second later. Fix 3 does this too; this is the same for the default path
# (tests/faults/test_hostile_clients.py::test_connections_closed_by_clients_free_their_slots_at_once).


def _install_close_on_eof() -> None:
    original = tcp_server.TCPServer._read_data
    if getattr(original, _MARK, False):
        return

    async def _read_data(self) -> None:
        await original(self)
        await self.idle_task.stop()  # nothing more can arrive: do not wait for the idle timeout

    setattr(_read_data, _MARK, True)
    tcp_server.TCPServer._read_data = _read_data  # type: ignore[method-assign]


# -- 1. shielded protocol_send --------------------------------------------------------------------------------


def _install_shield() -> None:
    original = tcp_server.TCPServer.protocol_send
    if getattr(original, _MARK, False):
        return

    async def protocol_send(self, event) -> None:
        with trio.CancelScope(shield=True):
            await original(self, event)

    setattr(protocol_send, _MARK, True)
    tcp_server.TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]


# -- 2. one write per response --------------------------------------------------------------------------------

# The response head waiting for its first body bytes, per connection (a class default: most have none).
H11Protocol._starq_held_head = b""  # type: ignore[attr-defined]


async def _send_h11_event(self: H11Protocol, event) -> None:
    try:
        data = self.connection.send(event)
    except h11.LocalProtocolError:
        if self.connection.their_state != h11.ERROR:
            raise
        return  # as stock Hypercorn: nothing more can be said to a client that broke the protocol
    if type(event) is h11.Response:
        self._starq_held_head = data
        return
    if self._starq_held_head:
        data = self._starq_held_head + data
        self._starq_held_head = b""
    if data:
        await self.send(RawData(data=data))


# -- 3. one idle-timer task per connection, and fix 1 without a second cancel scope ----------------------------


class _IdleSwitch:
    """Stands in for Hypercorn's ``TrioSingleTask`` as ``TCPServer.idle_task``.

    ``restart`` (the connection became idle) and ``stop`` (a request arrived) keep their signatures, but only
    the first ``restart`` starts a task: the connection's ``_idle_timeout``, which lives as long as the
    connection and reads ``idle``, ``deadline`` and ``scope`` from here.
    """

    def __init__(self) -> None:
        self.idle = False
        self.deadline = inf
        self.timeout = inf
        self.scope: trio.CancelScope | None = None
        self.scope_waits_for_deadline = False
        self.started = False
        self.finished = False

    async def restart(self, task_group, action) -> None:
        self.mark(True)
        if not self.started:
            self.started = True
            task_group._nursery.start_soon(action)

    async def stop(self) -> None:
        self.mark(False)

    def mark(self, idle: bool) -> None:
        self.idle = idle
        if not idle:
            return  # the watcher sees the flag when its deadline passes; no wake-up per request
        self.deadline = trio.current_time() + self.timeout
        if self.scope is not None:
            if self.scope_waits_for_deadline:
                self.scope.deadline = self.deadline
            else:
                self.scope.cancel()  # parked while busy: wake it to wait for the new deadline

    def finish(self) -> None:
        """The connection is over: the watcher ends without closing anything itself."""
        self.finished = True
        if self.scope is not None:
            self.scope.cancel()


class StarqTCPServer(tcp_server.TCPServer):
    """Hypercorn's trio ``TCPServer`` with fixes 1 and 3 (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.idle_task = _IdleSwitch()  # type: ignore[assignment]
        self.idle_task.timeout = self.config.keep_alive_timeout

    async def protocol_send(self, event: Event) -> None:
        # Fix 1: shielded as a whole (one cancel scope, where stock Hypercorn plus the shield had two per write).
        with trio.CancelScope(shield=True):
            if isinstance(event, RawData):
                async with self.send_lock:
                    try:
                        await self.stream.send_all(event.data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        await self.protocol.handle(Closed())
            elif isinstance(event, Closed):
                await self._close()
                await self.protocol.handle(Closed())
            elif isinstance(event, Updated):
                self.idle_task.mark(event.idle)

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            self.idle_task.finish()

    async def _idle_timeout(self) -> None:
        switch = self.idle_task
        while not switch.finished:
            with trio.CancelScope() as scope:
                switch.scope = scope
                switch.scope_waits_for_deadline = switch.idle
                if switch.idle:
                    scope.deadline = switch.deadline
                    await self.context.terminated.wait()
                else:
                    await trio.sleep_forever()
            switch.scope = None
            if switch.finished:
                return
            if switch.idle and (self.context.terminated.is_set() or trio.current_time() >= switch.deadline):
                with trio.CancelScope(shield=True):
                    await self._initiate_server_close()
                return
