"""A focused fix for Hypercorn 0.18's trio worker serving a QuartTrio app, installed before serving.

QuartTrio cancels its request nursery when Hypercorn reports ``http.disconnect``, and Hypercorn reports it from
inside the request task's final send. Hypercorn's own follow-up work in ``TCPServer.protocol_send`` (closing a
``Connection: close`` response, restarting the keep-alive idle timer) then runs in a cancelled scope and never
happens: connections stay open forever. Shielding ``protocol_send`` lets that work finish; Hypercorn already
shields the socket write inside it, so no new blocking is introduced. Cancellation of the request handler on
disconnect (which long-polls rely on) is unchanged.
"""

from __future__ import annotations

import trio
from hypercorn.trio import tcp_server

_MARK = "_starq_shielded"


def install() -> None:
    original = tcp_server.TCPServer.protocol_send
    if getattr(original, _MARK, False):
        return

    async def protocol_send(self, event) -> None:
        with trio.CancelScope(shield=True):
            await original(self, event)

    setattr(protocol_send, _MARK, True)
    tcp_server.TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
