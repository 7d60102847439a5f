"""HTTP/1.1 behaviours of Starq's serving path (``starq.server.http1``), tested over real sockets with the small
app of ``apps.py``: keep-alive, closes, pipelining, bodies and streams, disconnects."""

from __future__ import annotations

import trio

from serving.wire import LIMIT, Reader, connect, request_bytes


async def test_keep_alive_serves_many_requests_on_one_connection(served):
    stream = await connect(served)
    reader = Reader(stream)
    for _ in range(5):
        await stream.send_all(request_bytes("GET", "/ping"))
        status, headers, body = await reader.response()
        assert (status, body) == (200, b'{"ok":true}')
        assert headers.get("connection") != "close" and "date" in headers
    await stream.aclose()


async def test_client_connection_close_is_answered_then_closed(served):
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping", headers="Connection: close\r\n"))
    status, headers, body = await reader.response()
    assert (status, body, headers["connection"]) == (200, b'{"ok":true}', "close")
    assert await reader.closed()


async def test_keep_alive_max_requests_closes_the_connection(served):
    served["config"].keep_alive_max_requests = 2
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    assert (await reader.response())[1].get("connection") != "close"
    await stream.send_all(request_bytes("GET", "/ping"))
    status, headers, _ = await reader.response()
    assert status == 200 and headers.get("connection") == "close"
    assert await reader.closed()


async def test_idle_connection_is_closed_after_keep_alive_timeout(served):
    served["config"].keep_alive_timeout = 0.3
    stream = await connect(served)
    reader = Reader(stream)
    started = trio.current_time()  # the idle time starts after this, once the answer is out
    await stream.send_all(request_bytes("GET", "/ping"))
    await reader.response()
    assert await reader.closed()
    assert trio.current_time() - started >= 0.3


async def test_request_longer_than_keep_alive_timeout_is_not_cut(served):
    # The idle deadline passes while the request is in flight: the connection must stay, and then time out
    # again only once it has been idle for the whole timeout.
    served["config"].keep_alive_timeout = 0.2
    stream = await connect(served)
    reader = Reader(stream)
    for _ in range(2):
        await stream.send_all(request_bytes("GET", "/slow?s=0.5"))
        assert (await reader.response())[::2] == (200, b"slow")
    assert await reader.closed()


async def test_client_disconnect_cancels_a_long_poll_handler(served):
    events = served["events"]
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(request_bytes("GET", "/ping"))
    await reader.response()
    await stream.send_all(request_bytes("GET", "/hold"))
    with trio.fail_after(LIMIT):
        while "hold:start" not in events:
            await trio.sleep(0.01)
    await stream.aclose()
    with trio.fail_after(LIMIT):
        while "hold:cancelled" not in events:
            await trio.sleep(0.01)


async def test_pipelined_requests_are_answered_in_order(served):
    stream = await connect(served)
    reader = Reader(stream)
    await stream.send_all(
        request_bytes("GET", "/big?n=3")
        + request_bytes("POST", "/echo-length", b"abcde")
        + request_bytes("GET", "/slow?s=0.1")
        + request_bytes("GET", "/ping")
    )
    assert (await reader.response())[2] == b"xxx"
    assert (await reader.response())[2] == b"5"
    assert (await reader.response())[2] == b"slow"
    assert (await reader.response())[2] == b'{"ok":true}'


async def test_large_request_and_response_bodies(served):
    stream = await connect(served)
    reader = Reader(stream)
    body = b"y" * (5 * 1024 * 1024)
    await stream.send_all(request_bytes("POST", "/echo-length", body))
    assert (await reader.response())[2] == str(len(body)).encode()
    await stream.send_all(request_bytes("GET", f"/big?n={3 * 1024 * 1024}"))
    status, _, got = await reader.response()
    assert status == 200 and len(got) == 3 * 1024 * 1024 and set(got) == {ord("x")}


async def test_chunked_request_body(served):
    stream = await connect(served)
    reader = Reader(stream)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"hello", b" ", b"world" * 1000)) + b"0\r\n\r\n"
    await stream.send_all(request_bytes("POST", "/echo-length", chunks, headers="Transfer-Encoding: chunked\r\n"))
    assert (await reader.response())[2] == str(len(b"hello world" + b"world" * 999)).encode()


async def test_streamed_response_leaves_chunk_by_chunk(served):
    # A streamed body is not buffered to its end: each chunk leaves as the app sends it.
    stream = await connect(served)
    await stream.send_all(request_bytes("GET", "/stream-on-cue"))
    seen = b""
    with trio.fail_after(LIMIT):  # the handler sends the second chunk only once this has the first
        while b"first;" not in seen:
            seen += await stream.receive_some(65536)
    served["events"].append("stream:go")
    assert seen.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in seen.lower()
    reader = Reader(stream)
    reader.buffer = seen
    assert (await reader.response())[2] == b"first;second;"
    await stream.send_all(request_bytes("GET", "/ping"))  # the connection goes on after a chunked body
    assert (await reader.response())[2] == b'{"ok":true}'
