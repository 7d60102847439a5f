"""``Http1TCPServer``: Hypercorn's per-connection ``TCPServer``, handing plain connections to ``Connection``."""

from __future__ import annotations

import socket

import trio
from hypercorn.trio import tcp_server
from hypercorn.utils import parse_socket_addr

from ..connection_limit import rejection
from .connection import Connection


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
    """Serves a plain connection of an enabled config with ``Connection``; anything else as stock Hypercorn."""

    async def run(self) -> None:
        sock = _plain_socket(self.stream)
        if sock is None or not getattr(self.config, "starq_http1", False):
            await super().run()
            return
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
            self.app, self.config, self.context, self.state, self.stream, sock, client, server, watch.idle
        )
        # The cap of ``connection_limit`` (which patches the stock ``run``), kept here for this path.
        count = getattr(self.config, "starq_connections", None)
        if count is None:
            await connection.serve()
            return
        if count.active >= count.limit:
            count.refused += 1
            await connection.refuse(rejection(count.limit))
            return
        count.active += 1
        try:
            await connection.serve()
        finally:
            count.active -= 1


def _plain_socket(stream) -> socket.socket | None:
    """The stdlib socket under a plain trio ``SocketStream`` (None for TLS). ``Connection`` calls it directly:
    trio's socket methods add scheduler passes to every call, the cost this serving path exists to avoid."""
    if not isinstance(stream, trio.SocketStream):
        return None
    sock = getattr(stream.socket, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
