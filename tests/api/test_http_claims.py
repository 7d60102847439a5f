"""Long-poll claims over real HTTP against ``starq serve``: clients that hang up lose no job and strand none.

A client that stops waiting half-closes its connection (the server sees the hang-up) and still reads whatever
response was already on its way, so the test knows exactly which jobs reached a client. The queue's
claim_timeout is ten minutes, so a job stranded by a hang-up would still show as claimed without having
reached anyone.

A client that reads its claim answer and closes at once keeps the jobs it got (curl, requests without a session):
the delivery guard must not mistake that close for a hang-up. One that closes without reading them (its kernel
resets the connection) does not: they go back to the queue at once.
"""

from __future__ import annotations

import json
import random
import socket
import time

import httpx
import trio

from api.helpers import KEY, host_port, http_request, parse_response


async def hanging_up_claim(url: str, queue: str, wait: float, count: int) -> list[dict]:
    """Starts a long-poll claim, hangs up after ``wait`` seconds unless answered; returns the jobs received."""
    host, port = host_port(url)
    body = json.dumps({"count": count, "block_ms": 10_000}).encode()
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(http_request("POST", f"/api/v1/queues/{queue}/jobs/claim", body))
        raw = b""
        with trio.move_on_after(wait):
            while not parse_response(raw)[0]:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                raw += chunk
        if not parse_response(raw)[0]:
            await stream.send_eof()  # hang up; a response already sent still arrives
            with trio.move_on_after(10):
                while chunk := await stream.receive_some(65536):
                    raw += chunk
    status, payload = parse_response(raw)
    if status == 0:
        return []
    assert status == 200, raw
    return json.loads(payload)["jobs"]


async def test_clients_hanging_up_mid_long_poll_lose_no_job(server, queue_name):
    api = f"{server.url}/api/v1/queues"
    rng = random.Random(11)
    total = 150
    delivered: list[dict] = []
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(api, json={"name": queue_name, "claim_timeout": 600}, headers=KEY)
        assert r.status_code == 201

        async def impatient():
            for _ in range(15):
                delivered.extend(
                    await hanging_up_claim(server.url, queue_name, rng.uniform(0.005, 0.15), rng.randint(1, 3))
                )

        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(impatient)
            for start in range(0, total, 5):
                jobs = [{"payload": {"i": i}} for i in range(start, start + 5)]
                r = await client.post(f"{api}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY)
                assert r.status_code == 201
                await trio.sleep(rng.uniform(0, 0.03))
        held = (await client.get(f"{api}/{queue_name}/jobs", params={"status": "claimed", "count": 500})).json()
        rest = []
        while True:
            r = await client.post(f"{api}/{queue_name}/jobs/claim", json={"count": 100}, headers=KEY)
            if not (batch := r.json()["jobs"]):
                break
            rest += batch
    # None stranded: every job still claimed reached a client.
    assert {j["id"] for j in held["jobs"]} <= {j["id"] for j in delivered}
    # None lost: every job reached a client or is claimable at once.
    assert {j["payload"]["i"] for j in delivered + rest} == set(range(total))
    # None handed out twice: a job that reached a client is never given back to the queue.
    delivered_ids = [j["id"] for j in delivered]
    assert len(set(delivered_ids)) == len(delivered_ids)
    assert not set(delivered_ids) & {j["id"] for j in rest}


async def test_abandoned_httpx_long_polls_do_not_swallow_later_jobs(server, queue_name):
    """httpx clients give up mid long-poll (a cancelled request closes its connection); jobs submitted
    afterwards are all claimable at once, none taken by a waiter that is no longer there."""
    api = f"{server.url}/api/v1/queues"
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.post(api, json={"name": queue_name}, headers=KEY)).status_code == 201

        async def give_up():
            async with httpx.AsyncClient(timeout=30) as own:
                with trio.move_on_after(0.3):
                    await own.post(f"{api}/{queue_name}/jobs/claim", json={"count": 5, "block_ms": 20_000}, headers=KEY)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(give_up)
        jobs = [{"payload": {"i": i}} for i in range(30)]
        assert (await client.post(f"{api}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY)).status_code == 201
        r = await client.post(f"{api}/{queue_name}/jobs/claim", json={"count": 100}, headers=KEY)
        assert len(r.json()["jobs"]) == 30


async def test_httpx_clients_timing_out_while_jobs_flow(server, queue_name):
    """Clients with a short read timeout race submits. Afterwards every job is held by a client that got it
    or claimable at once, and none that reached a client was handed out again."""
    api = f"{server.url}/api/v1/queues"
    total = 80
    got: list[dict] = []
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.post(api, json={"name": queue_name}, headers=KEY)).status_code == 201

        async def worker(n):
            async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=0.05)) as own:
                for _ in range(20):
                    try:
                        r = await own.post(
                            f"{api}/{queue_name}/jobs/claim",
                            json={"count": 2, "block_ms": 5000, "worker": f"w{n}"},
                            headers=KEY,
                        )
                    except httpx.ReadTimeout:
                        continue
                    got.extend(r.json()["jobs"])

        async with trio.open_nursery() as nursery:
            for n in range(8):
                nursery.start_soon(worker, n)
            for i in range(total):
                await client.post(f"{api}/{queue_name}/jobs", json={"payload": {"i": i}}, headers=KEY)
                await trio.sleep(0.005)
        rest = []
        while batch := (await client.post(f"{api}/{queue_name}/jobs/claim", json={"count": 100}, headers=KEY)).json()[
            "jobs"
        ]:
            rest += batch
        listing = (await client.get(f"{api}/{queue_name}/jobs", params={"status": "claimed", "count": 500})).json()
    got_list = [j["id"] for j in got]
    got_ids, rest_ids = set(got_list), {j["id"] for j in rest}
    # A job whose response reached its client is never handed out again.
    assert len(got_ids) == len(got_list) and not got_ids & rest_ids
    stranded = {j["id"] for j in listing["jobs"]} - got_ids - rest_ids
    # None lost: every job reached a worker, is claimable at once, or is still held.
    assert len(got_ids | rest_ids | stranded) == total
    # A response written just as its client gave up cannot be told from a delivered one, so a job can be left
    # to its lease in that narrow race (0-1 of 80 on a quiet machine, a few under load); a hang-up that is
    # noticed must give its jobs back at once (with the release switched off, 12-17 of 80 were left here).
    assert len(stranded) <= 6, stranded


def claim_and_close(url: str, queue: str, keep_alive: bool) -> dict:
    """Claims one job on a connection of its own and closes the socket the moment the whole answer is in."""
    connection = f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
    request = http_request("POST", f"/api/v1/queues/{queue}/jobs/claim", b'{"count": 1}', headers=connection)
    with socket.create_connection(host_port(url)) as sock:
        sock.sendall(request)
        raw = b""
        while not parse_response(raw)[0]:
            chunk = sock.recv(65536)
            assert chunk, raw
            raw += chunk
    status, body = parse_response(raw)
    assert status == 200, raw
    return json.loads(body)["jobs"][0]


def test_jobs_read_then_closed_stay_with_their_client(server, queue_name):
    api = f"{server.url}/api/v1/queues"
    assert httpx.post(api, json={"name": queue_name}, headers=KEY).status_code == 201
    jobs = [{"payload": {"i": i}} for i in range(40)]
    assert httpx.post(f"{api}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY).status_code == 201
    got = [claim_and_close(server.url, queue_name, keep_alive=i % 2 == 0) for i in range(40)]
    for job in got:
        r = httpx.put(f"{api}/{queue_name}/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]}, headers=KEY)
        assert r.status_code == 200, r.text
    info = httpx.get(f"{api}/{queue_name}").json()
    assert (info["completed"], info["pending"], info["claimed"]) == (40, 0, 0)


def claim_then_drop_unread(url: str, queue: str) -> None:
    """Sends a claim, lets its answer arrive, and closes without reading it (as a client whose read timeout
    fired just then): its kernel resets the connection."""
    with socket.create_connection(host_port(url)) as sock:
        sock.sendall(http_request("POST", f"/api/v1/queues/{queue}/jobs/claim", b'{"count": 1}'))
        sock.settimeout(10)
        assert sock.recv(1, socket.MSG_PEEK)  # the answer is there; it is never read
        time.sleep(0.05)


def test_jobs_whose_client_reset_unread_go_back(server, queue_name):
    api = f"{server.url}/api/v1/queues"
    assert httpx.post(api, json={"name": queue_name, "claim_timeout": 600}, headers=KEY).status_code == 201
    jobs = [{"payload": {"i": i}} for i in range(5)]
    assert httpx.post(f"{api}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY).status_code == 201
    for _ in range(5):
        claim_then_drop_unread(server.url, queue_name)
    # claim_timeout is ten minutes: a job counted as delivered would stay claimed.
    deadline = time.monotonic() + 10
    while (info := httpx.get(f"{api}/{queue_name}").json())["pending"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (info["pending"], info["claimed"]) == (5, 0)


async def test_a_parked_claim_leaves_its_line_when_its_client_hangs_up(server, queue_name):
    """The watch for a hang-up starts only when a claim parks (a claim answered at once needs none): a parked
    claim whose client closes must leave its line then, not when its block_ms (a minute here) runs out."""
    api = f"{server.url}/api/v1/queues"
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.post(api, json={"name": queue_name}, headers=KEY)).status_code == 201

        async def waiting() -> int:
            return (await client.get(f"{server.url}/api/health")).json()["waiting_claims"]

        host, port = host_port(server.url)
        body = json.dumps({"count": 1, "block_ms": 60_000}).encode()
        streams = []
        for _ in range(3):
            stream = await trio.open_tcp_stream(host, port)
            await stream.send_all(http_request("POST", f"/api/v1/queues/{queue_name}/jobs/claim", body))
            streams.append(stream)
        with trio.fail_after(30):  # a bound on a broken server, below block_ms; no timing is measured
            while await waiting() < 3:
                await trio.sleep(0.05)
        for stream in streams:
            await stream.aclose()
        with trio.fail_after(30):
            while await waiting() > 0:
                await trio.sleep(0.05)
        # A job submitted now goes to a claim that is still there, not to one of the gone clients.
        r = await client.post(f"{api}/{queue_name}/jobs", json={"payload": {"n": 1}}, headers=KEY)
        assert r.status_code == 201
        r = await client.post(f"{api}/{queue_name}/jobs/claim", json={"count": 5}, headers=KEY)
        assert [j["payload"] for j in r.json()["jobs"]] == [{"n": 1}]
