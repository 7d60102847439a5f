"""A server that accepts connections and holds them, never answering: ``python -m benchmarks.holdserver``
prints ``PORT n`` and serves until killed.

The long-poll scenario parks its claims against this first, so its results show how fast the load generator
alone opens connections and sends claims (its ceiling for parking) next to how fast the server parks them. It
is a plain ``selectors`` loop (no trio, a few microseconds per connection), so it costs far less than the
client it measures; request bytes are read and dropped, and a connection closes when its client closes it.
"""

from __future__ import annotations

import resource
import selectors
import socket

BACKLOG = 4096  # as starq serve's


def serve_forever() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    selector = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                continue
            peer = key.fileobj
            assert isinstance(peer, socket.socket)  # only sockets are registered
            try:
                data = peer.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(peer)
                peer.close()


if __name__ == "__main__":
    serve_forever()
