"""Flow control across server processes: two ``starq serve`` on one store run a schedule once per due time and
share one rate limit."""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime

import httpx

from e2e.helpers import KEY, api, create_queue, wait_for


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def all_jobs(server, queue: str) -> list[dict]:
    out, cursor = [], ""
    while True:
        page = httpx.get(f"{api(server)}/{queue}/jobs", params={"count": 500, "cursor": cursor}, timeout=30).json()
        out += page["jobs"]
        if not page["has_more"]:
            return out
        cursor = page["cursor"]


def test_a_schedule_makes_one_job_per_due_time_with_two_server_processes(server_factory, queue_name):
    a, b = server_factory(), server_factory()
    create_queue(a, queue_name)
    started = time.time()
    r = httpx.post(f"{api(a)}/{queue_name}/schedules", json={"name": "tick", "cron": "* * * * * *"}, headers=KEY)
    assert r.status_code == 201, r.text
    # Four due seconds or more, both processes' maintenance loops looking at each (a busy machine may run them
    # late: a missed second then makes one catch-up job, so waiting for the jobs beats a fixed sleep).
    wait_for(lambda: len(all_jobs(b, queue_name)) >= 4, timeout=60, interval=0.2, what="four scheduled runs")
    r = httpx.patch(f"{api(b)}/{queue_name}/schedules/tick", json={"paused": True}, headers=KEY)
    assert r.status_code == 200
    paused = time.time()
    jobs = all_jobs(b, queue_name)
    assert all(j["schedule"] == "tick" for j in jobs)
    # Each job belongs to one due second (both processes' maintenance loops saw each one due): never two, and
    # never more jobs than seconds began between the schedule's creation and its pause.
    seconds = sorted(ms(j["created_at"]) // 1000 for j in jobs)
    assert len(set(seconds)) == len(seconds), seconds
    assert len(jobs) <= math.floor(paused) - math.floor(started), seconds
    last = httpx.get(f"{api(a)}/{queue_name}/schedules/tick").json()["last_job_id"]
    assert last in {j["id"] for j in jobs}


def test_a_rate_limit_holds_across_two_server_processes(server_factory, queue_name):
    a, b = server_factory(), server_factory()
    create_queue(a, queue_name, rate_limit={"max": 4, "per_ms": 500})
    jobs = [{"payload": {"i": i}} for i in range(60)]
    assert httpx.post(f"{api(a)}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY).status_code == 201
    claimed: list[dict] = []
    # At least 2.6 s (about five windows), and on a busy machine until there are four windows' worth from both
    # processes (a minute at most: the checks below then say what was missing).
    earliest, latest = time.monotonic() + 2.6, time.monotonic() + 60

    def enough() -> bool:
        if time.monotonic() < earliest:
            return False
        return time.monotonic() >= latest or (len(claimed) >= 16 and {j["worker"] for j in claimed} == {"a", "b"})

    def worker(server, name: str) -> None:
        with httpx.Client(headers=KEY, timeout=30) as client:
            while not enough():
                body = {"count": 3, "block_ms": 300, "worker": name}
                claimed.extend(client.post(f"{api(server)}/{queue_name}/jobs/claim", json=body).json()["jobs"])

    threads = [threading.Thread(target=worker, args=(s, n)) for s, n in ((a, "a"), (b, "b"), (a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Windows as the store made them: each starts at the first hand-out after the previous one ended.
    times = sorted(ms(j["claimed_at"]) for j in claimed)
    windows: list[int] = []
    start = None
    for at in times:
        if start is None or at >= start + 500:
            start = at
            windows.append(0)
        windows[-1] += 1
    assert max(windows) <= 4, windows
    assert len(claimed) >= 16 and len({j["id"] for j in claimed}) == len(claimed)
    # Both processes handed jobs out: the limit is shared, not per process.
    assert {j["worker"] for j in claimed} == {"a", "b"}
