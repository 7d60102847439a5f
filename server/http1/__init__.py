"""Starq's own HTTP/1.1 serving path, inside Hypercorn 0.18's trio worker.

Hypercorn still does what it does well: it opens the listeners, runs the ASGI lifespan, accepts connections and
runs graceful shutdown (``shutdown_trigger``, then ``graceful_timeout`` for requests in flight). For each plain
(non-TLS) connection of a config passed through ``enable(config)``, ``Http1TCPServer`` replaces Hypercorn's
ProtocolWrapper/H11Protocol/HTTPStream with ``Connection`` (``connection.py``): one task per connection, the
httptools C parser, the app awaited in that task, each response written with one ``send``.

What it serves: keep-alive and pipelining (answered in order), Content-Length and chunked request bodies,
``Expect: 100-continue``, HEAD, HTTP/1.0, ``Connection: close``, streamed (chunked) responses, the keep-alive
timeout (which also bounds how long a request head may take: slowloris clients are shed),
``keep_alive_max_requests``, the request-head limit (``h11_max_incomplete_size``: 431 with a JSON error),
``read_timeout`` for request bodies, and ``http.disconnect`` as soon as a client closes mid-request.
What it refuses, closing the connection: protocol upgrades (WebSocket, h2c) and CONNECT with 501, the HTTP/2
preface with 505, malformed requests with 400. TLS connections, and every connection on a Hypercorn version
other than ``PINNED`` (whose private worker internals this builds on), are served by stock Hypercorn.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from hypercorn.trio import run as hypercorn_run

from .connection import EXTENSION
from .server import Http1TCPServer

__all__ = ["EXTENSION", "PINNED", "Http1TCPServer", "enable", "is_supported"]

log = logging.getLogger("starq.http")

PINNED = "0.18."
CONFIG_FLAG = "starq_http1"


def is_supported() -> bool:
    """Whether the installed Hypercorn is the version this serving path was written against."""
    return version("hypercorn").startswith(PINNED)


def enable(config) -> bool:
    """Serves plain HTTP/1.1 connections of servers run with ``config`` with Starq's serving path.

    Returns False (and logs a warning) on a Hypercorn version other than ``PINNED``: those are served by stock
    Hypercorn. Other configs in the same process are unaffected.
    """
    if not is_supported():
        log.warning("Hypercorn %s is not %sx: serving with stock Hypercorn", version("hypercorn"), PINNED)
        return False
    setattr(config, CONFIG_FLAG, True)
    hypercorn_run.TCPServer = Http1TCPServer  # type: ignore[misc]  # it defers to stock for other configs
    return True
