"""A TCP proxy on loopback that injects network faults between a Starq server and its store.

Run it in a nursery (``port = await nursery.start(proxy.serve)``) and point the server's ``--redis-url`` at
``proxy.url``. While it runs, a test can:

- ``delay(seconds)``: hold every chunk of bytes, both ways, this long before forwarding it (latency);
- ``stall()`` / ``resume()``: stop forwarding in both directions while keeping connections open (a frozen
  store, or a network that drops packets without resetting anything); held bytes are dropped on ``cut``;
- ``cut()``: close every open connection at once, as a reset link or a restarted middlebox would;
- ``refuse(True)``: close new connections as soon as they are accepted (the store looks unreachable).

``statistics()`` tells how many connections were accepted, cut and refused, so a test can check that its
fault actually struck.
"""

from __future__ import annotations

import attrs
import trio

CHUNK = 65536


@attrs.frozen
class ProxyStatistics:
    accepted: int
    open: int
    cut: int
    refused: int
    bytes_forwarded: int


class FaultProxy:
    """Forwards loopback TCP connections to ``target`` (host, port), with faults on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._delay = 0.0
        self._flowing = trio.Event()
        self._flowing.set()
        self._refusing = False
        self._links: set[trio.CancelScope] = set()
        self._accepted = self._cut = self._refused = self._bytes = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    # -- faults -----------------------------------------------------------------------------------------

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def stall(self) -> None:
        if self._flowing.is_set():
            self._flowing = trio.Event()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> int:
        """Closes every open connection; returns how many."""
        links = list(self._links)
        for scope in links:
            scope.cancel()
        self._cut += len(links)
        return len(links)

    def refuse(self, on: bool = True) -> None:
        self._refusing = on

    def statistics(self) -> ProxyStatistics:
        return ProxyStatistics(self._accepted, len(self._links), self._cut, self._refused, self._bytes)

    # -- serving ----------------------------------------------------------------------------------------

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Accepts connections until cancelled; ``started()`` reports the listening port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._link, listeners, handler_nursery=nursery)

    async def _link(self, client: trio.SocketStream) -> None:
        self._accepted += 1
        async with client:
            if self._refusing:
                self._refused += 1
                return
            try:
                upstream = await trio.open_tcp_stream(*self._target)
            except OSError:
                return  # the store is down: the client sees its connection closed
            async with upstream:
                # Leaving this block closes both sides with no goodbye, as a dropped link would.
                with trio.CancelScope() as link:
                    self._links.add(link)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                            nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)
                    finally:
                        self._links.discard(link)

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream, link: trio.CancelScope) -> None:
        try:
            while True:
                data = await source.receive_some(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if self._delay:
                    await trio.sleep(self._delay)
                await self._flowing.wait()
                await sink.send_all(data)
                self._bytes += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        # One side is gone: the link is over in both directions.
        link.cancel()
