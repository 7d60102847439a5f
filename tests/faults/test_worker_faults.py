"""Worker faults: workers killed mid-job (their leases expire and the jobs are reclaimed), workers that
complete late with a stale lease (fenced with 409), and workers that vanish mid long-poll (no job stranded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from faults.helpers import create_queue

KEY = {"X-API-Key": "dev-key"}
WORKER = str(Path(__file__).with_name("worker_proc.py"))


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE, text=True)


async def read_line(proc: subprocess.Popen[str]) -> str:
    """The next line a spawned worker prints (read in a thread, as the pipe blocks)."""
    assert proc.stdout is not None  # spawned with stdout=PIPE
    return await trio.to_thread.run_sync(proc.stdout.readline)


def submit(url: str, queue: str, n: int) -> list[str]:
    r = httpx.post(
        f"{url}/api/v1/queues/{queue}/jobs", headers=KEY, json={"jobs": [{"payload": {"i": i}} for i in range(n)]}
    )
    assert r.status_code == 201, r.text
    return [job["id"] for job in r.json()["jobs"]]


def info(url: str, queue: str) -> dict:
    return httpx.get(f"{url}/api/v1/queues/{queue}").json()


async def test_workers_killed_mid_job_have_their_jobs_reclaimed(server, queue_name):
    create_queue(server.url, queue_name, claim_timeout=2, max_retries=3)
    submitted = submit(server.url, queue_name, 12)
    doomed = [spawn(server.url, queue_name, "hold", "4") for _ in range(3)]
    held: list[str] = []
    try:
        for proc in doomed:
            held += json.loads(await read_line(proc))
    finally:
        for proc in doomed:
            proc.kill()
            proc.wait()
    assert sorted(held) == sorted(submitted)
    assert info(server.url, queue_name)["claimed"] == 12

    # A healthy worker gets every job back once the dead workers' leases expire, each exactly once more.
    redone: list[dict] = []
    async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=30) as client:
        with trio.fail_after(60):  # leases of 2 s, reclaimed by the maintenance tick; generous for busy machines
            while len(redone) < 12:
                r = await client.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={"count": 12, "block_ms": 2000})
                redone += r.json()["jobs"]
        for job in redone:
            assert job["retries"] == 1 and job["error"] == "lease expired"
            r = await client.put(
                f"/api/v1/queues/{queue_name}/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]}
            )
            assert r.status_code == 200
    assert sorted(j["id"] for j in redone) == sorted(submitted)
    counts = info(server.url, queue_name)
    assert (counts["completed"], counts["claimed"], counts["pending"], counts["failed"]) == (12, 0, 0, 0)


async def test_late_worker_with_a_stale_lease_is_fenced_with_409(server, queue_name):
    create_queue(server.url, queue_name, claim_timeout=1, max_retries=3)
    (job_id,) = submit(server.url, queue_name, 1)
    base = f"/api/v1/queues/{queue_name}/jobs"
    async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=30) as client:
        first = (await client.post(base + "/claim", json={"worker": "slow"})).json()["jobs"][0]
        # The slow worker's lease expires; another worker gets the job under a new lease.
        with trio.fail_after(15):
            while True:
                jobs = (await client.post(base + "/claim", json={"block_ms": 1000, "worker": "fast"})).json()["jobs"]
                if jobs:
                    break
        second = jobs[0]
        assert second["id"] == job_id and second["lease_id"] != first["lease_id"] and second["retries"] == 1

        stale = first["lease_id"]
        for op, body in (("complete", {"result": {"by": "slow"}}), ("fail", {"error": "late"}), ("extend", {})):
            r = await client.put(f"{base}/{job_id}/{op}", json={"lease_id": stale, **body})
            assert r.status_code == 409, (op, r.text)
            assert r.json()["error"] == "lease_lost"

        winner = {"lease_id": second["lease_id"], "result": {"by": "fast"}}
        r = await client.put(f"{base}/{job_id}/complete", json=winner)
        assert r.status_code == 200
        # A retried complete under the winning lease is answered again; the stale one still is not.
        r = await client.put(f"{base}/{job_id}/complete", json=winner)
        assert r.status_code == 200
        r = await client.put(f"{base}/{job_id}/complete", json={"lease_id": stale, "result": {"by": "slow"}})
        assert r.status_code == 409

        job = (await client.get(f"{base}/{job_id}")).json()
    assert job["status"] == "completed" and job["result"] == {"by": "fast"}
    counts = info(server.url, queue_name)
    assert (counts["completed"], counts["claimed"], counts["pending"]) == (1, 0, 0)


async def test_workers_vanishing_mid_long_poll_strand_no_job(server_factory, queue_name):
    server = await trio.to_thread.run_sync(server_factory)
    create_queue(server.url, queue_name, claim_timeout=600)
    parked = spawn(server.url, queue_name, "poll", "10")  # one worker process with 10 long-polls
    try:
        assert (await read_line(parked)).strip() == "parked"
        with trio.fail_after(20):
            while httpx.get(server.url + "/api/health").json()["waiting_claims"] < 10:
                await trio.sleep(0.05)
    finally:
        parked.kill()
        parked.wait()
    # Submitted right after the waiters died: none may go to a dead waiter and sit out the 600 s lease.
    submitted = []
    for _ in range(20):
        submitted += submit(server.url, queue_name, 1)
    async with httpx.AsyncClient(base_url=server.url, headers=KEY, timeout=30) as client:
        with trio.fail_after(5):
            claimed: list[str] = []
            while len(claimed) < 20:
                r = await client.post(f"/api/v1/queues/{queue_name}/jobs/claim", json={"count": 100, "block_ms": 500})
                claimed += [job["id"] for job in r.json()["jobs"]]
        health = (await client.get("/api/health")).json()
    assert sorted(claimed) == sorted(submitted)
    assert health["waiting_claims"] == 0
