"""Slow and hostile clients: slowloris heads, slow bodies, idle connections, oversized headers.

Each runs against a real ``starq serve`` with small limits, while a well-behaved client keeps working; the
abusers must be shed by the server's timeouts and limits, never by the test hanging up on them.
"""

from __future__ import annotations

import httpx
import orjson
import trio

from faults.helpers import host_port

KEY = {"X-API-Key": "dev-key"}
LIMITS = {
    "STARQ_KEEP_ALIVE_TIMEOUT": "1.5",
    "STARQ_BODY_TIMEOUT": "1.5",
    "STARQ_MAX_HEADER_BYTES": "4096",
    "STARQ_MAX_CONNECTIONS": "40",
}
# Generous bounds for "the server closed it": far above the configured 1.5 s, so a busy machine cannot fail
# the test, yet finite, so a server that never sheds the connection does.
SHED_WITHIN = 20.0


async def read_until_closed(stream: trio.SocketStream, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open after ``within``."""
    data = b""
    with trio.fail_after(within):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return data  # reset by the server: closed too
            if not chunk:
                return data
            data += chunk


def parse_response(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body) if body else {}


async def good_citizen(url: str, queue: str, rounds: int) -> int:
    """Submits, claims and completes jobs one at a time; returns how many round trips succeeded."""
    done = 0
    async with httpx.AsyncClient(base_url=url, headers=KEY, timeout=10) as client:
        for i in range(rounds):
            r = await client.post(f"/api/v1/queues/{queue}/jobs", json={"payload": {"i": i}})
            assert r.status_code == 201, r.text
            r = await client.post(f"/api/v1/queues/{queue}/jobs/claim", json={"count": 1})
            job = r.json()["jobs"][0]
            r = await client.put(
                f"/api/v1/queues/{queue}/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]}
            )
            assert r.status_code == 200, r.text
            done += 1
    return done


async def test_slowloris_heads_are_shed_while_others_are_served(server_factory, queue_name):
    server = server_factory(env=LIMITS)
    host, port = host_port(server.url)
    httpx.post(server.url + "/api/v1/queues", json={"name": queue_name}, headers=KEY).raise_for_status()
    closed_after: list[float] = []

    async def slowloris() -> None:
        stream = await trio.open_tcp_stream(host, port)
        start = trio.current_time()
        await stream.send_all(b"POST /api/v1/queues HTTP/1.1\r\nHost: x\r\n")
        async with trio.open_nursery() as nursery:

            async def drip() -> None:
                try:
                    for i in range(200):  # one header byte every 0.2 s: never a complete head
                        await stream.send_all(b"X"[:1] if i % 2 else b"a")
                        await trio.sleep(0.2)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            nursery.start_soon(drip)
            await read_until_closed(stream, SHED_WITHIN)
            closed_after.append(trio.current_time() - start)
            nursery.cancel_scope.cancel()
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(15):
            nursery.start_soon(slowloris)
        await trio.sleep(0.3)
        served = await good_citizen(server.url, queue_name, 20)
    assert served == 20
    assert len(closed_after) == 15


async def test_slow_body_gets_408_and_a_json_error(server_factory, queue_name):
    server = server_factory(env=LIMITS)
    host, port = host_port(server.url)
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(
        b"POST /api/v1/queues HTTP/1.1\r\nHost: x\r\nX-API-Key: dev-key\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )

    async def drip() -> None:
        try:
            for _ in range(100):
                await trio.sleep(0.2)
                await stream.send_all(b" ")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drip)
        raw = await read_until_closed(stream, SHED_WITHIN)
        nursery.cancel_scope.cancel()
    await stream.aclose()
    status, body = parse_response(raw)
    assert status == 408
    assert body["error"] == "request_timeout" and body["detail"]
    # The server is fine afterwards.
    assert httpx.get(server.url + "/api/health").status_code == 200


async def test_connections_beyond_the_limit_get_503_and_idle_ones_expire(server_factory, queue_name):
    server = server_factory(env=LIMITS)
    host, port = host_port(server.url)
    idle = [await trio.open_tcp_stream(host, port) for _ in range(40)]
    await trio.sleep(0.2)
    extra = await trio.open_tcp_stream(host, port)
    await extra.send_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = parse_response(await read_until_closed(extra, SHED_WITHIN))
    await extra.aclose()
    assert status == 503
    assert body["error"] == "too_many_connections" and "40" in body["detail"]
    # The idle connections are closed by the keep-alive timeout; then the server has room again.
    for stream in idle:
        assert await read_until_closed(stream, SHED_WITHIN) == b""
        await stream.aclose()
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(SHED_WITHIN):
            while (await client.get(server.url + "/api/health")).status_code != 200:
                await trio.sleep(0.1)


async def test_oversized_request_head_gets_431(server_factory):
    server = server_factory(env=LIMITS)
    host, port = host_port(server.url)
    big_header = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
    long_line = b"GET /api/" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    for head, pieces in ((big_header, 1), (long_line, 1), (big_header, 8), (long_line, 8)):
        stream = await trio.open_tcp_stream(host, port)
        step = len(head) // pieces + 1
        try:
            for i in range(0, len(head), step):
                await stream.send_all(head[i : i + step])
                await trio.sleep(0.05)
        except trio.BrokenResourceError:
            pass  # the server may answer and close before the rest is sent
        raw = await read_until_closed(stream, SHED_WITHIN)
        await stream.aclose()
        status, body = parse_response(raw)
        assert status == 431, raw[:200]
        # Sent whole, the head is refused by the app with a JSON error; sent in pieces, the HTTP parser refuses
        # it as soon as the limit is passed, with an empty body.
        if body:
            assert body["error"] == "headers_too_large" and "4096" in body["detail"]
    # Just under the limit is fine.
    r = httpx.get(server.url + "/api/health", headers={"X-Big": "a" * 3000})
    assert r.status_code == 200


async def test_connections_closed_by_clients_free_their_slots_at_once(server_factory):
    """Regression: a keep-alive connection the client closed used to hold its slot (and its socket, in
    CLOSE_WAIT) until the server's idle timeout."""
    server = server_factory(env={**LIMITS, "STARQ_KEEP_ALIVE_TIMEOUT": "60"})
    host, port = host_port(server.url)
    for _ in range(3 * 40):  # three times the limit, one after the other, each closed by the client
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        with trio.fail_after(SHED_WITHIN):
            while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
                chunk = await stream.receive_some(65536)
                assert chunk, "the server closed a keep-alive connection"
                raw += chunk
        await stream.aclose()
        assert parse_response(raw)[0] == 200, raw[:300]
