"""A worker process the fault tests kill with SIGKILL at a known moment.

usage: python worker_proc.py URL QUEUE hold COUNT   claims up to COUNT jobs, prints their ids, "works" forever
       python worker_proc.py URL QUEUE poll COUNT   COUNT threads each long-poll for one job (60 s); prints
                                                    "parked" once all have sent their claim
"""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx

url, queue, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
path = f"/api/v1/queues/{queue}/jobs/claim"


def client() -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": "dev-key"}, timeout=120)


if mode == "hold":
    with client() as c:
        r = c.post(path, json={"count": count, "block_ms": 10000, "worker": "doomed"})
        print(json.dumps([job["id"] for job in r.json()["jobs"]]), flush=True)
else:
    sent = threading.Barrier(count + 1)

    def poll() -> None:
        with client() as c:
            request = c.build_request("POST", path, json={"count": 1, "block_ms": 60000, "worker": "doomed"})
            sent.wait()
            r = c.send(request)
            print(json.dumps([job["id"] for job in r.json()["jobs"]]), flush=True)

    for _ in range(count):
        threading.Thread(target=poll, daemon=True).start()
    sent.wait()
    print("parked", flush=True)
time.sleep(3600)
