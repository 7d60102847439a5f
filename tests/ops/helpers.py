"""Helpers of the operations tests: the dev key, a parsed ``/metrics`` answer, and what a new user does with an
installed Starq."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serverproc import start_server

KEY = {"X-API-Key": "dev-key"}


class Scrape:
    """One parsed ``/metrics`` answer: ``value(name, **labels)`` finds a sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        raise KeyError(f"no sample {name} {labels}")

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample that matches (e.g. one route across statuses)."""
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


def drive_installed(starq: Path, workdir: Path) -> None:
    """What a new user does with an installed Starq: ``--version``, ``serve`` on its embedded store, one job
    through submit → claim → complete over HTTP, the dashboard and the API reference with their files."""
    version = subprocess.run([str(starq), "--version"], capture_output=True, text=True, timeout=60, cwd=workdir)
    assert version.returncode == 0 and version.stdout.startswith("starq, version "), version
    server = start_server("--data-dir", str(workdir / "data"), program=[str(starq)], cwd=str(workdir), clean_env=True)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            q = "/api/v1/queues/installed"
            assert client.post("/api/v1/queues", json={"name": "installed"}, headers=KEY).status_code == 201
            submitted = client.post(f"{q}/jobs", json={"payload": {"n": 1}}, headers=KEY).json()["jobs"][0]
            (job,) = client.post(f"{q}/jobs/claim", json={"count": 1}, headers=KEY).json()["jobs"]
            assert job["id"] == submitted["id"] and job["payload"] == {"n": 1}
            done = client.put(f"{q}/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]}, headers=KEY)
            assert done.status_code == 200 and done.json()["status"] == "completed"
            assert client.get(f"{q}/jobs/{job['id']}").json()["status"] == "completed"
            page = client.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert client.get("/dashboard/static/dashboard.js").status_code == 200
            assert client.get("/api/openapi.json").json()["openapi"].startswith("3.")
            # The reference page's files come from the installed package.
            docs = client.get("/api/docs").text
            files = re.findall(r'(?:src|href)="(/api/docs/[^"]+)"', docs)
            assert len(files) == 3, docs
            for path in files:
                served = client.get(path)
                assert served.status_code == 200 and len(served.content) > 0, path
    finally:
        assert server.stop() == 0, server.output()
    assert "Traceback" not in server.output()
