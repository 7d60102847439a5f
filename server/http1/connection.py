"""One HTTP/1.1 connection, served by one task: read, parse (httptools), call the ASGI app, write.

The app is awaited in the connection's own task; no task is spawned per request. While it runs, the reading is
done by the app's own ``receive`` calls: QuartTrio always keeps one task waiting in ``receive`` for the request
body and then for ``http.disconnect``, so a client that closes mid-request is noticed as soon as its EOF (or
reset) arrives, and the app cancels its handler. Reading ahead stops once the next pipelined request is parsed,
so a client cannot make the server buffer more than one read beyond the request it is answering.

Writes go straight to the non-blocking socket: a response's head and body leave in one ``send`` (the head is held
until the first body message, as the ASGI spec allows), and only a write the kernel cannot take at once waits.
``send`` returns whether the message's bytes were handed to the kernel, and the scope's ``extensions``
entry ``"starq.http1"`` offers ``client_gone()``: together they let ``DeliveryGuard`` decide from facts, not from
scheduling, whether a claim's jobs reached the socket. It also offers ``send_within()``: ``send`` with a bound on a
write that has to wait, so a response the kernel takes at once needs no timer.
"""

from __future__ import annotations

import math
import socket
from typing import Any
from urllib.parse import unquote

import trio

from .framing import (
    CHUNKED_END,
    CONTINUE,
    NO_BODY_STATUSES,
    BadResponse,
    check_header,
    chunk,
    date_header,
    error_response,
    status_line,
)
from .parsing import Request, RequestParser

EXTENSION = "starq.http1"
MAX_RECV = 65536
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
# After an error answer the client may still be sending; its bytes are read and dropped for this long (and up to
# this much) before the socket closes, because closing with unread bytes resets the connection and can destroy
# the answer before the client reads it.
DRAIN_SECONDS = 1.0
DRAIN_BYTES = 1 << 20
_DISCONNECT = {"type": "http.disconnect"}
_ASGI = {"spec_version": "2.3", "version": "3.0"}


class Connection(RequestParser):
    """Serves one client connection until it closes, breaks, idles out or the server shuts down.

    Args:
        app: Hypercorn's app wrapper (called with ``scope, receive, send, sync_spawn, call_soon``).
        config: Hypercorn's ``Config`` (``keep_alive_timeout``, ``keep_alive_max_requests``,
            ``h11_max_incomplete_size``, ``read_timeout``, ``root_path``, ``include_date_header``).
        context: Hypercorn's worker context (``terminated`` says the server is shutting down).
        state: the lifespan state each request's scope gets a copy of.
        stream: the accepted trio stream (closed at the end).
        sock: the stdlib socket under ``stream`` (non-blocking).
        idle: the set this connection's idle wait registers its cancel scope in, so shutdown can wake it.
    """

    def __init__(
        self,
        app,
        config,
        context,
        state,
        stream: trio.SocketStream,
        sock: socket.socket,
        client: Any,
        server: Any,
        idle: set[trio.CancelScope],
    ) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.state = state
        self.stream = stream
        self.sock = sock
        self.client = client
        self.server = server
        self.idle = idle
        self.extensions = {
            EXTENSION: {
                "client_gone": self.client_gone,
                "reached_client": self.reached_client,
                "body_arrived": self.body_arrived,
                "send_within": self.send_within,
            }
        }
        super().__init__(config.h11_max_incomplete_size)
        self.eof = False  # the client closed its side, or the connection broke
        self.reset = False  # the client reset the connection (a read or peek failed)
        self.broken = False  # writing failed or stopped half-way: nothing more can be sent
        self.requests = 0
        self.idle_deadline = trio.current_time() + config.keep_alive_timeout
        # The response in progress.
        self.current: Request | None = None
        self.started = False
        self.done = False
        self.head_sent = False
        self.status = 200
        self.headers: Any = ()
        self.suppress = False
        self.chunked = False
        self.remaining = -1  # body bytes still owed under the app's Content-Length (-1: no Content-Length)
        self.close_after = False
        self.write_timeout: float | None = None  # the bound on a write the kernel cannot take at once (send_within)

    # -- the loop --------------------------------------------------------------------------------------------

    async def serve(self) -> None:
        drain = False
        try:
            while True:
                request = await self.next_request()
                if request is None:
                    break
                await self.respond(request)
                if self.close_after or self.broken or self.context.terminated.is_set():
                    drain = self.close_after and not self.eof
                    return
                self.idle_deadline = trio.current_time() + self.config.keep_alive_timeout
            if self.error is not None and not self.broken:
                await self.write(self.error)
                drain = True
        finally:
            await self.close(drain)

    async def next_request(self) -> Request | None:
        """The next parsed request; None when the connection should close instead."""
        queue = self.queue
        while not queue:
            if self.error is not None or self.eof:
                return None
            data = self.recv_ready()
            if data is None:
                if not await self.wait_idle():
                    return None
                continue
            if not data:
                return None
            self.feed(data)
        return queue.popleft()

    def recv_ready(self) -> bytes | None:
        """The bytes that have arrived, without waiting: None when there are none yet, b"" (and ``eof`` set)
        when the client closed or broke the connection."""
        try:
            data = self.sock.recv(MAX_RECV)
        except BlockingIOError:
            return None
        except OSError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
        return data

    async def wait_idle(self) -> bool:
        """Waits for bytes until the keep-alive deadline; False when it passed or the server is shutting down.

        The deadline also bounds how long a client may take to send a whole request head (slowloris)."""
        if self.context.terminated.is_set():
            return False
        with trio.CancelScope(deadline=self.idle_deadline) as scope:
            self.idle.add(scope)
            try:
                await trio.lowlevel.wait_readable(self.sock)
            finally:
                self.idle.discard(scope)
        return not scope.cancelled_caught

    # -- one request -------------------------------------------------------------------------------------------

    async def respond(self, request: Request) -> None:
        self.current = request
        self.started = self.done = self.head_sent = self.chunked = False
        self.remaining = -1
        self.requests += 1
        self.close_after = not request.keep_alive or self.requests >= self.config.keep_alive_max_requests
        if self.context.max_requests is not None:
            await self.context.mark_request()
        path, _, query = request.url.partition(b"?")
        try:
            decoded = unquote(path.decode("ascii"))
        except UnicodeDecodeError:
            await self.write(error_response(400, "bad_request", "the request path is not ASCII"))
            self.close_after = True
            return
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": request.http_version,
            "method": request.method,
            "scheme": "http",
            "path": decoded,
            "raw_path": path,
            "query_string": query,
            "root_path": self.config.root_path,
            "headers": request.headers,
            "client": self.client,
            "server": self.server,
            "state": self.state.copy(),
            "extensions": self.extensions,
        }
        try:
            await self.app(scope, self.receive, self.send, trio.to_thread.run_sync, trio.from_thread.run)
        except Exception:
            await self.config.log.exception("Error in ASGI Framework")
        if not self.done:
            self.close_after = True
            if not self.head_sent and not self.client_gone():
                # The app ended (or failed) without answering a client that is still there.
                await self.write(
                    self.error
                    if self.error is not None
                    else error_response(500, "internal_error", "the server could not answer")
                )
            elif self.head_sent:
                self.broken = True  # a response cut short: its framing cannot be completed
        if not request.complete:
            self.close_after = True  # the rest of the body was never read
        self.current = None

    async def receive(self) -> dict:
        request = self.current
        assert request is not None  # the app receives only while it answers a request
        while True:
            if request.body:
                body = request.body[0] if len(request.body) == 1 else b"".join(request.body)
                request.body.clear()
                request.body_done = request.complete
                return {"type": "http.request", "body": body, "more_body": not request.complete}
            if request.complete:
                if not request.body_done:
                    request.body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return await self.watch_for_disconnect()
            if self.eof or self.done or self.error is not None:
                return _DISCONNECT
            if request.expect_continue:
                request.expect_continue = False
                if not self.started:
                    await self.write(CONTINUE)
            data = await self.read(self.config.read_timeout)
            if not data:
                return _DISCONNECT
            self.feed(data)

    async def watch_for_disconnect(self) -> dict:
        """Reads ahead until the client closes: how a handler learns its client left (QuartTrio then cancels it)."""
        # Let the handler run first: most answer at once, and then this returns before it ever asks the kernel to
        # watch the socket (a failed read, two epoll changes and a cancellation saved per request). A bare yield:
        # a cancellation pending now is delivered by the wait below.
        await trio.lowlevel.cancel_shielded_checkpoint()
        while not self.eof and not self.done:
            if self.queue or self.error is not None:
                await trio.sleep_forever()  # the next request is parsed: read no further while this one runs
            data = await self.read(None)
            if not data:
                break
            self.feed(data)
        return _DISCONNECT

    async def read(self, timeout: float | None) -> bytes:
        """The next bytes from the client; b"" (and ``eof`` set) when it closed, broke, or sent nothing in time."""
        while (data := self.recv_ready()) is None:
            if timeout is None:
                await trio.lowlevel.wait_readable(self.sock)
            else:
                with trio.move_on_after(timeout) as scope:
                    await trio.lowlevel.wait_readable(self.sock)
                if scope.cancelled_caught:
                    self.eof = True
                    return b""
        return data

    def body_arrived(self) -> bool:
        """True when the request being answered has arrived whole: ``receive`` then answers without waiting."""
        return self.current is not None and self.current.complete

    def client_gone(self) -> bool:
        """True when the client has closed or reset the connection, read or not yet read (a non-blocking peek)."""
        if self.eof or self.broken:
            return True
        try:
            pending = self.sock.recv(1, _PEEK)
        except BlockingIOError:
            return False
        except OSError:
            self.reset = True  # reading the error cleared it from the socket: remember it
            return True
        return not pending

    async def reached_client(self, grace: float) -> bool:
        """After a response was handed to the kernel: False if the client reset the connection instead of
        reading it, waiting up to ``grace`` seconds for the client to do anything.

        A client that closes its socket with unread bytes in it (a timed-out HTTP client, or one that had
        already closed when the bytes arrived) makes its kernel answer with a reset; one that read everything
        closes with a FIN, or sends its next request. Call it only once the app's ``receive`` is no longer
        waiting (the socket has one reader at a time). The wait is shielded (a cancelled request still learns
        whether its answer arrived) and bounded by ``grace``, in one cancel scope.
        """
        if self.broken or self.reset:
            return False
        if not self.eof and not self.queue and self.parsing is None:
            with trio.CancelScope(deadline=trio.current_time() + grace, shield=True):
                try:
                    await trio.lowlevel.wait_readable(self.sock)
                except (trio.BusyResourceError, trio.ClosedResourceError):
                    pass
        try:
            # A reset leaves its error on the socket until something reads it (every read here records it).
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.reset = True
        except OSError:
            self.reset = True
        return not self.reset

    # -- writing ------------------------------------------------------------------------------------------------

    async def send(self, message: dict) -> bool:
        """The ASGI ``send``. Returns True once the message's bytes are in the kernel's send buffer."""
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.done:
                raise BadResponse("http.response.body outside a response")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.head_sent:
                data = self.frame(body, more)
            else:
                data = self.head(body, more)
                data += self.frame(body, more)
                self.head_sent = True
            if not more:
                self.done = True
                if self.remaining > 0:
                    self.close_after = True  # less body than its Content-Length: the client sees a cut
                    self.broken = True
            written = await self.write(data) if data else not self.broken
            if not more and self.close_after and written:
                # The last response on this connection: the FIN leaves with it, so a client that reads until the
                # connection ends is not kept waiting while the request finishes.
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            return written
        if kind == "http.response.start":
            if self.started:
                raise BadResponse("http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            self.headers = message.get("headers") or ()
            return True
        raise BadResponse(f"unexpected ASGI message {kind!r}")

    async def send_within(self, message: dict, timeout: float) -> bool:
        """``send``, where a write the kernel cannot take at once waits at most ``timeout`` seconds; past it the
        response is cut short (the connection is broken) and False returned. A write the kernel takes whole, the
        usual case, costs no timer (a cancel scope with a deadline: ~6 µs per response)."""
        self.write_timeout = timeout
        try:
            return await self.send(message)
        finally:
            self.write_timeout = None

    def head(self, body: bytes, more: bool) -> bytes:
        status = self.status
        request = self.current
        assert request is not None  # the app sends only while it answers a request
        self.suppress = request.method == "HEAD" or status in NO_BODY_STATUSES or status < 200
        parts = [status_line(status)]
        has_length = has_date = False
        for name, value in self.headers:
            if b":" in name:
                check_header(name, value)  # raises: a colon would make another header of the name
            lower = name.lower()
            if lower == b"content-length":
                has_length = True
                self.remaining = int(value)
            elif lower == b"transfer-encoding":
                continue  # the framing is this layer's
            elif lower == b"connection":
                if b"close" in value.lower():
                    self.close_after = True
                continue
            elif lower == b"date":
                has_date = True
            parts.append(b"%b: %b\r\n" % (name, value))
        if self.suppress:
            self.remaining = -1
        elif not has_length:
            if not more:
                parts.append(b"content-length: %d\r\n" % len(body))
            elif request.http_version == "1.1":
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
            else:
                self.close_after = True  # HTTP/1.0 without a length: the body ends when the connection does
        if not request.complete or self.context.terminated.is_set():
            self.close_after = True
        if self.close_after:
            parts.append(b"connection: close\r\n")
        elif request.http_version == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        if not has_date and self.config.include_date_header:
            parts.append(date_header())
        parts.append(b"\r\n")
        head = b"".join(parts)
        # Each part is one line ending in CR LF: a head with more CRs or LFs than lines has one in a header,
        # which could start another header or response (splitting). One count over the head, not four
        # searches per header (the same check as check_header's, which names the culprit).
        if head.count(b"\n") != len(parts) or head.count(b"\r") != len(parts):
            for name, value in self.headers:
                check_header(name, value)
        return head

    def frame(self, body: bytes, more: bool) -> bytes:
        if self.suppress:
            return b""
        if self.chunked:
            return chunk(body) + CHUNKED_END if not more else chunk(body)
        if self.remaining >= 0:
            self.remaining -= len(body)
            if self.remaining < 0:
                self.broken = True
                raise BadResponse("the response body is longer than its Content-Length")
        return body

    async def write(self, data: bytes) -> bool:
        """Hands ``data`` to the kernel; False (and ``broken`` set) if the connection failed first."""
        if self.broken:
            return False
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.broken = self.eof = True
            return False
        if sent == len(data):
            return True
        return await self.write_rest(memoryview(data)[sent:])

    async def write_rest(self, view: memoryview) -> bool:
        finished = False
        try:
            with trio.move_on_after(self.write_timeout if self.write_timeout is not None else math.inf):
                while view:
                    await trio.lowlevel.wait_writable(self.sock)
                    try:
                        view = view[self.sock.send(view) :]
                    except BlockingIOError:
                        pass
                finished = True
        except (OSError, trio.ClosedResourceError):
            self.eof = True
        finally:
            if not finished:
                self.broken = True  # cancelled or failed half-way: the response cannot be completed
        return finished

    # -- closing ------------------------------------------------------------------------------------------------

    async def refuse(self, answer: bytes) -> None:
        """Answers without reading the request (the connection cap), then closes."""
        try:
            with trio.move_on_after(DRAIN_SECONDS):
                await self.write(answer)
        finally:
            await self.close(True)

    async def close(self, drain: bool) -> None:
        """Closes the connection; ``drain`` reads and drops what the client still sends first (bounded)."""
        with trio.CancelScope(shield=True):
            if not self.broken and not self.eof:
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                    if drain:
                        with trio.move_on_after(DRAIN_SECONDS):
                            dropped = 0
                            while dropped < DRAIN_BYTES:
                                data = await self.read(None)
                                if not data:
                                    break
                                dropped += len(data)
                    else:
                        while self.sock.recv(MAX_RECV):  # what has already arrived, without waiting
                            pass
                except OSError:
                    pass
            await self.stream.aclose()
