"""The README's examples work as written, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

README = Path(__file__).resolve().parent.parent / "README.md"
H = {"X-API-Key": "dev-key"}


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_worker_completes_every_job(server, queue_name, tmp_path):
    (worker_src,) = [b for b in python_blocks() if "jobs/claim" in b]
    # Point the example at the test server and queue; everything else runs exactly as printed.
    worker_src = worker_src.replace("http://127.0.0.1:8000", server.url).replace(
        "/queues/emails", f"/queues/{queue_name}"
    )
    script = tmp_path / "worker.py"
    script.write_text(worker_src)

    api = f"{server.url}/api/v1/queues"
    assert httpx.post(api, json={"name": queue_name}, headers=H).status_code == 201
    jobs = [{"payload": {"to": f"user{i}@example.com"}} for i in range(12)] + [{"payload": {"no_to": 1}}]
    assert httpx.post(f"{api}/{queue_name}/jobs", json={"jobs": jobs}, headers=H).status_code == 201

    worker = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = httpx.get(f"{api}/{queue_name}").json()
            if info["completed"] == 12 and info["pending"] + info["claimed"] == 0:
                break
            time.sleep(0.1)
    finally:
        worker.kill()
        worker.wait()
    assert info["completed"] == 12
    page = httpx.get(f"{api}/{queue_name}/jobs", params={"status": "completed", "count": 500}).json()
    assert sorted(j["result"]["sent_to"] for j in page["jobs"]) == sorted(f"user{i}@example.com" for i in range(12))
    # The payload without "to" raised KeyError in the worker: reported as a failure, retried with backoff.
    (bad,) = [
        j
        for j in httpx.get(f"{api}/{queue_name}/jobs", params={"count": 500}).json()["jobs"]
        if "no_to" in j["payload"]
    ]
    assert bad["status"] in ("scheduled", "pending", "claimed", "failed") and "to" in bad["error"]
