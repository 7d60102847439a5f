"""What the dashboard's recent-events panel costs the server and the store (the figures in docs/dashboard.md).

One queue with ``events: true`` under a steady load (submit, claim, complete one job at a time: three events a
job), its queue page's snapshot stream open throughout; phases with no panel, one and ten panels open (each a
plain HTTP reader of ``GET /dashboard/job-events``, which costs the server what a browser's would), and no panel
again; before that, an idle queue with and without one panel. Prints one JSON line per phase: the CPU of the
``starq serve`` process and of the store in per cent of a core, jobs/s reached, server CPU per job.

    uv run python -m benchmarks.dashboard_events [--rate 20] [--phase 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable

import httpx

from starq.server.settings import DEV_KEY

from . import procstat
from .harness import Server, starq_server, store

HEADERS = {"X-API-Key": DEV_KEY}
QUEUE = "dashboard-events"
SETTLE_SECONDS = 2.0  # after a change of readers, before a phase is measured


def _steady_load(server: Server, rate: float, stop: threading.Event, done: list[int]) -> None:
    """Submits, claims and completes one job at a time, ``rate`` jobs a second, until ``stop``."""
    jobs = f"/api/v1/queues/{QUEUE}/jobs"
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=10) as client:
        due = time.monotonic()
        while not stop.is_set():
            client.post(jobs, json={"payload": {"n": done[0]}}).raise_for_status()
            (job,) = client.post(f"{jobs}/claim", json={"count": 1, "worker": "bench"}).json()["jobs"]
            client.put(
                f"{jobs}/{job['id']}/complete", json={"lease_id": job["lease_id"], "result": {}}
            ).raise_for_status()
            done[0] += 1
            due += 1 / rate
            stop.wait(max(0.0, due - time.monotonic()))


def _reader(server: Server, path: str) -> Callable[[], None]:
    """Reads an event stream in a thread until the returned function is called (then at its next line)."""
    stop = threading.Event()

    def read() -> None:
        with (
            httpx.Client(headers=HEADERS, timeout=None) as client,
            client.stream("GET", server.url + path) as response,
        ):
            for _ in response.iter_lines():
                if stop.is_set():
                    return

    threading.Thread(target=read, daemon=True).start()
    return stop.set


def _phase(name: str, seconds: float, server: Server, store_pids: list[int], done: list[int]) -> None:
    time.sleep(SETTLE_SECONDS)
    served, stored = procstat.CpuMeter(server.pids), procstat.CpuMeter(store_pids)
    served.start()
    stored.start()
    jobs, began = done[0], time.monotonic()
    time.sleep(seconds)
    elapsed, jobs = time.monotonic() - began, done[0] - jobs
    served.stop()
    stored.stop()
    row = {
        "phase": name,
        "server_cpu_pct": round(100 * served.used / elapsed, 2),
        "store_cpu_pct": round(100 * stored.used / elapsed, 2),
        "jobs_per_s": round(jobs / elapsed, 1),
        "server_ms_per_job": round(1000 * served.used / jobs, 2) if jobs else None,
        "load": procstat.load_average(),
    }
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="jobs per second of the steady load")
    parser.add_argument("--phase", type=float, default=20.0, help="seconds measured per phase")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, store(workdir) as embedded, starq_server(embedded.url) as server:
        assert embedded.process is not None
        store_pids = [embedded.process.pid]
        httpx.post(
            f"{server.url}/api/v1/queues", json={"name": QUEUE, "events": True}, headers=HEADERS
        ).raise_for_status()
        panel = f"/dashboard/job-events?queue={QUEUE}"
        done = [0]
        _phase("idle, no panel", options.phase, server, store_pids, done)
        close = _reader(server, panel)
        _phase("idle, 1 panel", options.phase, server, store_pids, done)
        close()
        stop = threading.Event()
        load = threading.Thread(target=_steady_load, args=(server, options.rate, stop, done), daemon=True)
        load.start()
        close_page = _reader(server, f"/dashboard/events?view=queue&queue={QUEUE}")
        _phase("load, panel closed", options.phase, server, store_pids, done)
        panels = [_reader(server, panel)]
        _phase("load, 1 panel", options.phase, server, store_pids, done)
        panels += [_reader(server, panel) for _ in range(9)]
        _phase("load, 10 panels", options.phase, server, store_pids, done)
        for close in panels:
            close()
        _phase("load, panel closed again", options.phase, server, store_pids, done)
        close_page()
        stop.set()
        load.join()


if __name__ == "__main__":
    main()
