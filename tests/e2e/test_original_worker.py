"""The workers of the READMEs, written with ``requests``, run as printed against a real server: the original
Starq's, exactly as it was, and today's."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from e2e.helpers import KEY, api, create_queue, queue_info, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"

# The worker loop from the original project's README: claim up to 5 jobs with a 5 s long-poll, do the work,
# report each one complete with a result. Only the two constants at the top are pointed at the test server.
ORIGINAL_WORKER = """
import requests

API = "http://localhost:8000"
QUEUE = "emails"
HEADERS = {"X-API-Key": "dev-key"}


def send_email(payload):
    return {"sent_to": payload["to"], "ok": True}


while True:
    resp = requests.post(
        f"{API}/api/v1/queues/{QUEUE}/jobs/claim",
        json={"count": 5, "block_ms": 5000},
        headers=HEADERS,
    )
    for job in resp.json()["jobs"]:
        result = send_email(job["payload"])
        requests.put(
            f"{API}/api/v1/queues/{QUEUE}/jobs/{job['id']}/complete",
            json={"result": result},
            headers=HEADERS,
        )
"""


def test_original_readme_worker_completes_every_job(server, queue_name, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(
        ORIGINAL_WORKER.replace('"http://localhost:8000"', repr(server.url)).replace('"emails"', repr(queue_name))
    )
    create_queue(server, queue_name)
    emails = [f"user{i}@example.com" for i in range(23)]
    # Half before the worker starts, half while it long-polls.
    r = httpx.post(
        f"{api(server)}/{queue_name}/jobs",
        json={"jobs": [{"payload": {"to": e}} for e in emails[:12]]},
        headers=KEY,
        timeout=30,
    )
    assert r.status_code == 201
    worker = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = worker.stdout
    assert output is not None
    try:
        wait_for(lambda: queue_info(server, queue_name)["completed"] == 12, what="first 12 completed")
        for e in emails[12:]:
            r = httpx.post(f"{api(server)}/{queue_name}/jobs", json={"payload": {"to": e}}, headers=KEY, timeout=30)
            assert r.status_code == 201
        info = wait_for(lambda: (i := queue_info(server, queue_name))["completed"] == 23 and i, what="all completed")
        assert worker.poll() is None, output.read().decode()  # still looping, no crash
    finally:
        worker.kill()
        worker.wait()
    assert (info["pending"], info["claimed"], info["failed"]) == (0, 0, 0)
    page = httpx.get(
        f"{api(server)}/{queue_name}/jobs", params={"status": "completed", "count": 100}, timeout=30
    ).json()
    assert sorted(j["result"]["sent_to"] for j in page["jobs"]) == sorted(emails)
    assert all(j["result"]["ok"] is True for j in page["jobs"])


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_worker_completes_every_job(server, queue_name, tmp_path):
    (worker_src,) = [b for b in readme_python_blocks() if "jobs/claim" in b]
    # Point the example at the test server and queue; everything else runs exactly as printed.
    worker_src = worker_src.replace("http://127.0.0.1:8000", server.url).replace(
        "/queues/emails", f"/queues/{queue_name}"
    )
    script = tmp_path / "worker.py"
    script.write_text(worker_src)

    create_queue(server, queue_name)
    jobs = [{"payload": {"to": f"user{i}@example.com"}} for i in range(12)] + [{"payload": {"no_to": 1}}]
    assert httpx.post(f"{api(server)}/{queue_name}/jobs", json={"jobs": jobs}, headers=KEY).status_code == 201

    worker = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = queue_info(server, queue_name)
            if info["completed"] == 12 and info["pending"] + info["claimed"] == 0:
                break
            time.sleep(0.1)
    finally:
        worker.kill()
        worker.wait()
    assert info["completed"] == 12
    page = httpx.get(f"{api(server)}/{queue_name}/jobs", params={"status": "completed", "count": 500}).json()
    assert sorted(j["result"]["sent_to"] for j in page["jobs"]) == sorted(f"user{i}@example.com" for i in range(12))
    # The payload without "to" raised KeyError in the worker: reported as a failure, retried with backoff.
    everything = httpx.get(f"{api(server)}/{queue_name}/jobs", params={"count": 500}).json()["jobs"]
    (bad,) = [j for j in everything if "no_to" in j["payload"]]
    assert bad["status"] in ("scheduled", "pending", "claimed", "failed") and "to" in bad["error"]
