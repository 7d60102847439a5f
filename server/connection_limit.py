"""A cap on concurrent connections per server process: beyond it a new connection gets a 503 and is closed.

Hypercorn has no such limit, so thousands of idle or slowloris connections would each hold a file descriptor
and some memory until their timeouts passed. With the cap a process serves at most ``limit`` connections at
once and sheds the rest at the door with a clear JSON answer, which a client may retry shortly.

The cap lives on the Hypercorn ``Config`` of one ``serve`` call (no module state); the patch of
``TCPServer.run`` only reads it from there, and leaves servers whose config has no cap unchanged.
"""

from __future__ import annotations

import attrs
import orjson
import trio
from hypercorn.trio import tcp_server

_MARK = "_starq_counted"
# A refused connection is answered and closed within this long, however slow its client.
REJECT_TIMEOUT = 1.0


@attrs.define
class ConnectionCount:
    """How many connections one server process holds, and how many it refused."""

    limit: int
    active: int = 0
    refused: int = 0


def rejection(limit: int) -> bytes:
    body = orjson.dumps(
        {
            "detail": f"the server already holds its limit of {limit} connections; retry shortly",
            "error": "too_many_connections",
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "retry-after: 1\r\n"
        "x-content-type-options: nosniff\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def install(config, limit: int) -> ConnectionCount:
    """Caps connections of servers run with ``config`` at ``limit``; returns the live count."""
    count = ConnectionCount(limit)
    config.starq_connections = count
    _patch()
    return count


def _patch() -> None:
    original = tcp_server.TCPServer.run
    if getattr(original, _MARK, False):
        return

    async def run(self) -> None:
        count: ConnectionCount | None = getattr(self.config, "starq_connections", None)
        if count is None:
            await original(self)
            return
        if count.active >= count.limit:
            count.refused += 1
            await _refuse(self.stream, rejection(count.limit))
            return
        count.active += 1
        try:
            await original(self)
        finally:
            count.active -= 1

    setattr(run, _MARK, True)
    tcp_server.TCPServer.run = run  # type: ignore[method-assign]


async def _refuse(stream: trio.abc.Stream, answer: bytes) -> None:
    with trio.move_on_after(REJECT_TIMEOUT):
        try:
            await stream.send_all(answer)
            # Closing with unread request bytes would reset the connection and could destroy the answer
            # before the client reads it: half-close, then drain what the client already sent.
            await stream.send_eof()
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
    with trio.CancelScope(shield=True):
        await stream.aclose()
