"""What Starq's serving path does beyond plain HTTP/1.1 behaviour: one write per response, HEAD, HTTP/1.0,
100-continue, the head limit, malformed requests, the connection cap, and what it tells the delivery guard
(``client_gone``, ``send``'s result, ``reached_client``)."""

from __future__ import annotations

import socket

import trio

from serving.apps import GONE_BEFORE, REACHED, WITHIN, WITHIN_SECONDS
from serving.wire import LIMIT, Reader, connect, exchange, json_body, request_bytes, status_of
from starq.server.http1.connection import Connection


async def test_slowloris_head_is_shed_at_the_keep_alive_timeout(served):
    served["config"].keep_alive_timeout = 0.3
    started = trio.current_time()  # before the connection: its timer cannot start earlier
    stream = await connect(served)
    await stream.send_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")

    async def drip():
        for _ in range(50):
            await stream.send_all(b"X-A: b\r\n")  # never the blank line
            await trio.sleep(0.05)

    with trio.move_on_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drip)
            assert await Reader(stream).closed()
            nursery.cancel_scope.cancel()
    # Shed at the timeout, not kept while the header lines drip (for at least 50 × 0.05 s = 2.5 s).
    assert 0.3 <= trio.current_time() - started < 2.5


async def test_a_response_leaves_in_one_write(served, monkeypatch):
    writes: list[bytes] = []
    original = Connection.write

    async def counting(self, data):
        writes.append(bytes(data))
        return await original(self, data)

    monkeypatch.setattr(Connection, "write", counting)
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    await reader.response()
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(b'{"ok":true}')


async def test_head_gets_the_headers_without_the_body(served):
    stream = await connect(served)
    await stream.send_all(request_bytes("HEAD", "/big?n=10") + request_bytes("GET", "/ping"))
    reader = Reader(stream)
    with trio.fail_after(LIMIT):
        while reader.buffer.count(b"\r\n\r\n") < 2:
            assert await reader._more()
    head, rest = reader.buffer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 10" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200")  # no body bytes between the two answers


async def test_http_1_0_closes_unless_kept_alive(served):
    raw = await exchange(served, b"GET /ping HTTP/1.0\r\n\r\n")
    assert status_of(raw) == 200 and raw.endswith(b'{"ok":true}')
    stream = await connect(served)
    reader = Reader(stream)
    for _ in range(2):
        await stream.send_all(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = await reader.response()
        assert (status, headers["connection"], body) == (200, "keep-alive", b'{"ok":true}')
    # A streamed body has no length in HTTP/1.0: it ends when the connection does.
    raw = await exchange(served, b"GET /stream HTTP/1.0\r\n\r\n")
    assert raw.endswith(b"\r\n\r\nfirst;second;") and b"chunked" not in raw


async def test_expect_100_continue_is_answered_before_the_body(served):
    stream = await connect(served)
    await stream.send_all(b"POST /echo-length HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    got = b""
    with trio.fail_after(LIMIT):
        while b"\r\n\r\n" not in got:
            got += await stream.receive_some(65536)
    assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
    await stream.send_all(b"hello")
    assert (await Reader(stream).response())[::2] == (200, b"5")


async def test_oversized_request_head_gets_431_whole_or_in_pieces(served):
    big = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
    raw = await exchange(served, big)
    assert status_of(raw) == 431 and json_body(raw)["error"] == "headers_too_large"
    stream = await connect(served)
    raw = b""
    try:
        for i in range(0, len(big), 1000):
            await stream.send_all(big[i : i + 1000])
            await trio.sleep(0.02)
    except trio.BrokenResourceError:
        pass
    with trio.fail_after(LIMIT):
        while chunk := await stream.receive_some(65536):
            raw += chunk
    assert status_of(raw) == 431 and "4096" in json_body(raw)["detail"]
    # Pipelined requests behind a small head are not mistaken for one big head.
    stream = await connect(served)
    await stream.send_all(request_bytes("POST", "/echo-length", b"z" * 3000) * 3)
    reader = Reader(stream)
    for _ in range(3):
        assert (await reader.response())[::2] == (200, b"3000")


async def test_malformed_requests_get_a_json_error_and_a_close(served):
    for raw_request, status, error in [
        (b"NOT A REQUEST\r\n\r\n", 400, "bad_request"),
        (b"GET /ping HTTP/1.1\r\nX-Id: a\x7fb\r\n\r\n", 400, "bad_request"),
        (b"GET /ping HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "bad_request"),
        # Both framings at once is how requests are smuggled past proxies: refused.
        (
            b"POST /echo-length HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            400,
            "bad_request",
        ),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /ping HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 501, "upgrade_not_supported"),
    ]:
        raw = await exchange(served, raw_request)
        assert status_of(raw) == status, raw
        assert json_body(raw)["error"] == error and b"connection: close" in raw


async def test_requests_answered_before_a_malformed_one_are_kept(served):
    raw = await exchange(served, request_bytes("GET", "/ping") + b"BROKEN\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and b'{"ok":true}HTTP/1.1 400' in raw


async def test_an_app_error_is_a_500_and_a_cut_stream_closes(served):
    stream = await connect(served)
    await stream.send_all(request_bytes("GET", "/fail"))
    assert (await Reader(stream).response())[0] == 500
    raw = await exchange(served, request_bytes("GET", "/cut"))
    assert b"part;" in raw and not raw.endswith(b"0\r\n\r\n")  # no clean end: the client sees the cut


async def test_connections_beyond_the_cap_get_503(served):
    served["count"].limit = 2
    held = [await connect(served) for _ in range(2)]
    for stream in held:
        await stream.send_all(request_bytes("GET", "/ping"))
        await Reader(stream).response()
    raw = await exchange(served, request_bytes("GET", "/ping"))
    assert status_of(raw) == 503 and json_body(raw)["error"] == "too_many_connections"
    assert served["count"].refused == 1


async def test_a_closed_connection_frees_its_slot_at_once(served):
    count = served["count"]
    stream = await connect(served)
    await stream.send_all(request_bytes("GET", "/ping"))
    await Reader(stream).response()
    assert count.active == 1
    await stream.aclose()
    with trio.fail_after(LIMIT):  # the keep-alive timeout is 30 s
        while count.active:
            await trio.sleep(0.01)


async def test_client_gone_knows_of_a_half_close_before_it_is_read(raw_served):
    # The app never reads: the half-close sits unread in the socket, and client_gone() still sees it.
    GONE_BEFORE.clear()
    stream = await trio.open_tcp_stream(*raw_served)
    await stream.send_all(request_bytes("GET", "/gone"))
    with trio.fail_after(LIMIT):  # the app has looked once, before the half-close
        while not GONE_BEFORE:
            await trio.sleep(0.01)
    await stream.send_eof()
    status, _, body = await Reader(stream).response()
    assert (status, body) == (200, b"before=False after=True")


async def test_send_reports_bytes_handed_to_the_kernel(raw_served):
    stream = await trio.open_tcp_stream(*raw_served)
    await stream.send_all(request_bytes("GET", "/"))
    status, headers, body = await Reader(stream).response()
    assert (status, headers["transfer-encoding"], body) == (200, "chunked", b"first|sent=True")


async def test_reached_client_tells_a_reset_from_a_read(raw_served):
    REACHED.clear()
    # Read, then closed: the client has the answer.
    stream = await trio.open_tcp_stream(*raw_served)
    await stream.send_all(request_bytes("GET", "/reach"))
    assert (await Reader(stream).response())[2] == b"answer"
    await stream.aclose()
    # Closed with the answer unread in its socket (a timed-out client): its kernel resets the connection.
    stream = await trio.open_tcp_stream(*raw_served)
    await stream.send_all(request_bytes("GET", "/reach"))
    with trio.fail_after(LIMIT):
        assert await stream.socket.recv(1, socket.MSG_PEEK)  # the answer is there; it is never read
    await stream.aclose()
    with trio.fail_after(LIMIT):
        while len(REACHED) < 2:
            await trio.sleep(0.01)
    assert REACHED == [True, False]


async def test_the_last_response_ends_the_connection_before_the_request_does(raw_served):
    # /reach keeps its request open after answering (up to LIMIT): a client reading until the connection ends
    # must not wait for that.
    REACHED.clear()
    stream = await trio.open_tcp_stream(*raw_served)
    await stream.send_all(request_bytes("GET", "/reach", headers="Connection: close\r\n"))
    raw = b""
    with trio.fail_after(LIMIT / 2):  # the request stays open for LIMIT
        while chunk := await stream.receive_some(65536):
            raw += chunk
    assert raw.endswith(b"\r\n\r\nanswer")
    await stream.aclose()
    with trio.fail_after(LIMIT):
        while not REACHED:
            await trio.sleep(0.01)
    assert REACHED == [True]


async def test_shutdown_closes_idle_connections_and_finishes_requests_in_flight(served):
    idle = await connect(served)
    await idle.send_all(request_bytes("GET", "/ping"))
    idle_reader = Reader(idle)
    await idle_reader.response()
    busy = await connect(served)
    await busy.send_all(request_bytes("GET", "/slow?s=0.5"))
    with trio.fail_after(LIMIT):  # in flight: its handler has started
        while "slow:start" not in served["events"]:
            await trio.sleep(0.01)
    served["stop"].set()
    assert await idle_reader.closed()
    busy_reader = Reader(busy)
    status, headers, body = await busy_reader.response()
    assert (status, body, headers["connection"]) == (200, b"slow", "close")
    assert await busy_reader.closed()


async def test_a_response_header_with_a_cr_or_lf_is_never_written(raw_served):
    """A header value carrying CR or LF could start a header or a response of its own (response splitting): the
    app's response is refused whole and the client gets the layer's 500."""
    ok = await exchange(
        raw_served_as(raw_served), request_bytes("GET", "/header/x-a:fine", headers="Connection: close\r\n")
    )
    assert status_of(ok) == 200 and b"\r\nx-a: fine\r\n" in ok
    for bad in ("x-a:v%0d%0ax-evil:%201", "x-a:v%0ax-evil:%201", "x-a:v%0dx-evil:%201"):
        raw = await exchange(raw_served_as(raw_served), request_bytes("GET", f"/header/{bad}"))
        assert status_of(raw) == 500 and b"evil" not in raw, raw


def raw_served_as(address: tuple[str, int]) -> dict:
    """``raw_served``'s address in the shape ``exchange`` takes."""
    return {"host": address[0], "port": address[1]}


async def test_send_within_bounds_only_a_write_that_waits(raw_served):
    """A client that stops reading cannot hold a response written with ``send_within`` past its bound: the write
    gives up, says so, and the connection (its response cut short) closes."""
    WITHIN.clear()
    stream = await trio.open_tcp_stream(*raw_served)
    await stream.send_all(request_bytes("GET", "/within"))  # and never read
    with trio.fail_after(LIMIT):
        while not WITHIN:
            await trio.sleep(0.05)
    written, took = WITHIN[0]
    assert not written and WITHIN_SECONDS <= took < WITHIN_SECONDS + 2
    assert await Reader(stream).closed()
