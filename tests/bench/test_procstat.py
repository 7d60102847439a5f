"""``benchmarks.procstat.served_connections``: which process holds how many client connections of a port (the
scale group reports how ``starq serve --workers N`` split them)."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack

from benchmarks import procstat


def test_counts_the_accepted_connections_a_process_holds():
    with ExitStack() as stack:
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        port = listener.getsockname()[1]
        assert procstat.served_connections([os.getpid()], port) == {os.getpid(): 0}
        for _ in range(3):
            stack.enter_context(socket.create_connection(("127.0.0.1", port)))  # the clients' ends do not count
            stack.enter_context(listener.accept()[0])
        other = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        stack.enter_context(socket.create_connection(other.getsockname()))
        stack.enter_context(other.accept()[0])  # another port's connection does not count either
        assert procstat.served_connections([os.getpid()], port) == {os.getpid(): 3}
