"""Parsing requests with httptools (llhttp, in C) into ``Request`` objects, one connection's worth at a time.

httptools calls the ``on_*`` methods from ``feed_data``. Heads complete go to ``queue`` in arrival order; body
bytes go to the request they belong to, which may be one still waiting in the queue (pipelining). A request the
layer refuses (malformed, a head over the limit, an upgrade) sets ``error``: the answer owed once the requests
before it are answered, after which the connection closes and nothing more is parsed.
"""

from __future__ import annotations

from collections import deque

import httptools

from .framing import error_response


class Request:
    """A request whose head has been parsed; its body arrives in ``body`` as the parser produces it."""

    __slots__ = (
        "body",
        "body_done",
        "complete",
        "expect_continue",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = "GET"
        self.http_version = "1.1"
        self.keep_alive = True
        self.body: list[bytes] = []
        self.complete = False  # the whole body has been parsed
        self.body_done = False  # the app has been told there is no more body
        self.expect_continue = False


class RequestParser:
    """The parsing half of a connection.

    Args:
        head_limit: most bytes a request line plus headers may take (``h11_max_incomplete_size``).
    """

    def __init__(self, head_limit: int) -> None:
        self.head_limit = head_limit
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()  # parsed heads not answered yet, in arrival order
        self.parsing: Request | None = None  # the message the parser is inside of
        self.messages = 0  # messages begun on this connection
        self.head_open = False  # the parser is inside a request head
        self.began = False  # a message began during the current feed
        self.head_bytes = 0  # bytes received of a head that is not complete yet
        self.error: bytes | None = None  # an answer to send (then close) once the queue before it is answered

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return  # the connection ends after the answers owed so far: what follows is not read
        self.began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # on_headers_complete already refused it
        except httptools.HttpParserError as exc:
            if self.error is None:
                if "PRI" in str(exc):
                    self.error = error_response(
                        505, "http_version_not_supported", "HTTP/2 is not served here; use HTTP/1.1"
                    )
                else:
                    self.error = error_response(400, "bad_request", f"malformed HTTP/1.1 request: {exc}")
        if self.head_open and self.error is None:
            # A head is still arriving (httptools buffers it whole, unbounded): count what of this read can belong
            # to it. When it began within this read, only what follows the last blank line (the end of the
            # previous head) can; with no blank line, the start may be the end of a body, so nothing is counted
            # yet (the next read is counted whole, so a head can overshoot the limit by one read at most).
            if self.began:
                end = data.rfind(b"\r\n\r\n")
                first = self.messages == 1  # nothing came before it on this connection
                self.head_bytes = len(data) - end - 4 if end >= 0 else len(data) if first else 0
            else:
                self.head_bytes += len(data)
            self.check_head_size(self.head_bytes)

    def check_head_size(self, size: int) -> None:
        limit = self.head_limit
        if size > limit:
            self.error = error_response(
                431, "headers_too_large", f"the request line and headers are about {size} bytes; the limit is {limit}"
            )

    def on_message_begin(self) -> None:
        self.parsing = Request()
        self.messages += 1
        self.head_open = self.began = True
        self.head_bytes = 0

    # httptools calls the callbacks below only between on_message_begin and on_message_complete, while a
    # message is being parsed: ``parsing`` is set for each of them.

    def on_url(self, url: bytes) -> None:
        assert self.parsing is not None
        self.parsing.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.parsing is not None
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.parsing.expect_continue = True
        self.parsing.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_open = False
        request = self.parsing
        assert request is not None
        parser = self.parser
        method = parser.get_method().decode("ascii")
        size = len(method) + len(request.url) + sum([len(n) + len(v) + 4 for n, v in request.headers])
        limit = self.head_limit
        if self.error is not None:
            return
        if size > limit:
            self.check_head_size(size)
            return
        if parser.should_upgrade():
            self.error = error_response(
                501, "upgrade_not_supported", "protocol upgrades (WebSocket, h2c) and CONNECT are not served here"
            )
            return
        request.method = method
        request.http_version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        self.queue.append(request)

    def on_body(self, body: bytes) -> None:
        assert self.parsing is not None
        self.parsing.body.append(body)

    def on_message_complete(self) -> None:
        assert self.parsing is not None
        self.parsing.complete = True
        self.parsing = None
