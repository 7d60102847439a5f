"""``Http1TCPServer``: Hypercorn's per-connection ``TCPServer``, handing each connection to ``Connection`` under a
cap on open connections.

Without the cap, thousands of idle or slowloris connections would each hold a file descriptor and some memory
until their timeouts passed. With it, a process serves at most ``limit`` connections at once and sheds the rest
at the door with a JSON 503 that a client may retry shortly.
"""

from __future__ import annotations

import socket

import attrs
import trio
from hypercorn.trio import tcp_server
from hypercorn.utils import parse_socket_addr

from .connection import Connection
from .framing import error_response


@attrs.define
class ConnectionCount:
    """How many connections one server process holds, and how many it refused."""

    limit: int
    active: int = 0
    refused: int = 0


def rejection(limit: int) -> bytes:
    return error_response(
        503, "too_many_connections", f"the server already holds its limit of {limit} connections; retry shortly",
        b"retry-after: 1\r\n",
    )  # fmt: skip


class _ShutdownWatch:
    """Stands in for the worker context's ``terminated`` event (same interface, same event).

    Setting it (Hypercorn does when shutdown begins) also wakes every idle connection of the worker, which then
    closes: Hypercorn's own idle timers wait on the event, but ``Connection`` has no timer task to do so.
    """

    def __init__(self, event) -> None:
        self._event = event
        self.idle: set[trio.CancelScope] = set()

    async def set(self) -> None:
        await self._event.set()
        for scope in list(self.idle):
            scope.cancel()

    async def wait(self) -> None:
        await self._event.wait()

    async def clear(self) -> None:
        await self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()


class Http1TCPServer(tcp_server.TCPServer):
    """Serves a connection with ``Connection`` (or refuses it at the cap)."""

    async def run(self) -> None:
        stream = self.stream
        assert isinstance(stream, trio.SocketStream)  # Starq serves no TLS: Hypercorn hands over plain streams
        sock = _plain_socket(stream)
        watch = self.context.terminated
        if not isinstance(watch, _ShutdownWatch):
            watch = self.context.terminated = _ShutdownWatch(watch)
        try:
            client = parse_socket_addr(sock.family, sock.getpeername())
            server = parse_socket_addr(sock.family, sock.getsockname())
        except OSError:  # the client is already gone
            with trio.CancelScope(shield=True):
                await self.stream.aclose()
            return
        connection = Connection(
            self.app, self.config, self.context, self.state, stream, sock, client, server, watch.idle
        )
        count: ConnectionCount = self.config.starq_connections  # set by enable()
        if count.active >= count.limit:
            count.refused += 1
            await connection.refuse(rejection(count.limit))
            return
        count.active += 1
        try:
            await connection.serve()
        finally:
            count.active -= 1


def _plain_socket(stream: trio.SocketStream) -> socket.socket:
    """The stdlib socket under a trio ``SocketStream``. ``Connection`` calls it directly: trio's socket methods
    add scheduler passes to every call, the cost this serving path exists to avoid."""
    return stream.socket._sock  # type: ignore[attr-defined]
