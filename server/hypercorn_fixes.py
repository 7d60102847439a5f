"""A focused fix for Hypercorn 0.18's trio worker serving a QuartTrio app, installed before serving.

QuartTrio cancels its request nursery when Hypercorn reports ``http.disconnect``, and Hypercorn reports it from
inside the request task's final send. Hypercorn's own follow-up work in ``TCPServer.protocol_send`` (closing a
``Connection: close`` response, restarting the keep-alive idle timer) then runs in a cancelled scope and never
happens: connections stay open forever. Shielding ``protocol_send`` lets that work finish; Hypercorn already
shields the socket write inside it, so no new blocking is introduced. Cancellation of the request handler on
disconnect (which long-polls rely on) is unchanged.

A second fix: when the client closes its side, Hypercorn's read loop ends but the keep-alive idle timer keeps
running in the connection's task group, so the closed connection (its socket in CLOSE_WAIT, its task, its
slot under the connection limit) lingers for up to ``keep_alive_timeout``; 50 short-lived connections left 35
sockets in CLOSE_WAIT a second later. Stopping the timer once nothing more can be read lets it close at once.
"""

from __future__ import annotations

import trio
from hypercorn.trio import tcp_server

_MARK = "_starq_shielded"


def install() -> None:
    _install_send_shield()
    _install_close_on_eof()


def _install_close_on_eof() -> None:
    original = tcp_server.TCPServer._read_data
    if getattr(original, _MARK, False):
        return

    async def _read_data(self) -> None:
        await original(self)
        # Nothing more can arrive on this connection: do not keep it open waiting for the idle timeout.
        await self.idle_task.stop()

    setattr(_read_data, _MARK, True)
    tcp_server.TCPServer._read_data = _read_data  # type: ignore[method-assign]


def _install_send_shield() -> None:
    original = tcp_server.TCPServer.protocol_send
    if getattr(original, _MARK, False):
        return

    async def protocol_send(self, event) -> None:
        with trio.CancelScope(shield=True):
            await original(self, event)

    setattr(protocol_send, _MARK, True)
    tcp_server.TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
