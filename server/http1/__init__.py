"""Starq's HTTP/1.1 serving path, inside Hypercorn 0.18's trio worker.

Hypercorn still does what it does well: it opens the listeners, runs the ASGI lifespan, accepts connections and
runs graceful shutdown (``shutdown_trigger``, then ``graceful_timeout`` for requests in flight). Every connection
it accepts is served by ``Connection`` (``connection.py``) instead of Hypercorn's ProtocolWrapper/H11Protocol/
HTTPStream: one task per connection, the httptools C parser, the app awaited in that task, each response written
with one ``send``. ``pyproject.toml`` pins Hypercorn to 0.18, whose worker internals this builds on.

What it serves: keep-alive and pipelining (answered in order), Content-Length and chunked request bodies,
``Expect: 100-continue``, HEAD, HTTP/1.0, ``Connection: close``, streamed (chunked) responses, the keep-alive
timeout (which also bounds how long a request head may take: slowloris clients are shed),
``keep_alive_max_requests``, the request-head limit (``h11_max_incomplete_size``: 431 with a JSON error),
``read_timeout`` for request bodies, ``http.disconnect`` as soon as a client closes mid-request, and a cap on open
connections (``max_connections``: 503 beyond it). What it refuses, closing the connection: protocol upgrades
(WebSocket, h2c) and CONNECT with 501, the HTTP/2 preface with 505, malformed requests with 400. There is no
TLS and no HTTP/2 here: a proxy in front provides them.
"""

from __future__ import annotations

from hypercorn.config import Config
from hypercorn.trio import run as hypercorn_run

from .connection import EXTENSION
from .server import ConnectionCount, Http1TCPServer

__all__ = ["EXTENSION", "ConnectionCount", "Http1TCPServer", "enable"]


def enable(config: Config, max_connections: int) -> ConnectionCount:
    """Serves every connection of Hypercorn's trio worker in this process with Starq's serving path, at most
    ``max_connections`` at once for servers run with ``config``; returns that config's live count."""
    count = ConnectionCount(max_connections)
    config.starq_connections = count  # type: ignore[attr-defined]
    hypercorn_run.TCPServer = Http1TCPServer  # type: ignore[misc]
    return count
