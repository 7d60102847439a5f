"""SIGTERM with 1,000 idle long-polls: every one is answered ``{"jobs": []}`` and the process exits promptly."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import trio

from e2e.helpers import create_queue

WAITERS = 1000
# "Within a few seconds" of the signal, with room for a machine busy with other work.
EXIT_WITHIN = 10.0


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def read_response(stream: trio.SocketStream) -> tuple[int, bytes]:
    raw = b""
    while True:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if sep:
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:"))
            if len(rest) >= length:
                return int(lines[0].split()[1]), rest[:length]
        chunk = await stream.receive_some(65536)
        if not chunk:
            return 0, raw
        raw += chunk


async def test_sigterm_answers_1000_idle_long_polls_and_exits(server_factory, queue_name):
    server = server_factory()
    create_queue(server, queue_name)
    host, port = host_port(server.url)
    body = json.dumps({"count": 1, "block_ms": 60_000}).encode()
    request = (
        f"POST /api/v1/queues/{queue_name}/jobs/claim HTTP/1.1\r\nHost: t\r\nX-API-Key: dev-key\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    answers: list[tuple[int, bytes]] = []

    async def long_poll(task_status=trio.TASK_STATUS_IGNORED):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(request)
            task_status.started()
            answers.append(await read_response(stream))

    async with httpx.AsyncClient(timeout=60) as client:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for _ in range(WAITERS):
                    await nursery.start(long_poll)
                while (await client.get(f"{server.url}/api/health")).json().get("waiting_claims") != WAITERS:
                    await trio.sleep(0.2)
                server.process.send_signal(signal.SIGTERM)
                signalled = trio.current_time()
        answered_in = trio.current_time() - signalled
    assert len(answers) == WAITERS
    assert all(status == 200 for status, _ in answers), {s for s, _ in answers}
    assert all(json.loads(b) == {"jobs": []} for _, b in answers)
    try:
        code = await trio.to_thread.run_sync(server.process.wait, EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"starq serve still running {EXIT_WITHIN} s after SIGTERM") from None
    assert code == 0, server.output()
    assert answered_in < EXIT_WITHIN
