"""Helpers of the dashboard tests: the headless Chromium to drive, the public API for arranging what the browser
should then show, and a watch on what a page did that it should not."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "dev-key"
KEY_STORE = "starq.apiKey"  # the localStorage entry dashboard.js keeps the key in


class Api:
    """The public HTTP API with the dev key, for arranging what the browser should then show."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=10)

    def new_queue(self, prefix: str = "q", **settings) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.client.post("/api/v1/queues", json={"name": name, **settings}).raise_for_status()
        return name

    def submit(self, queue: str, *payloads: dict, **extra) -> list[dict]:
        reply = self.client.post(
            f"/api/v1/queues/{queue}/jobs", json={"jobs": [{"payload": p, **extra} for p in payloads]}
        )
        reply.raise_for_status()
        return reply.json()["jobs"]

    def submit_many(self, queue: str, jobs: list[dict], **extra) -> dict:
        """Submits items as the API takes them (``depends_on`` with ``"#i"``...), ``batch=`` too; the whole answer."""
        reply = self.client.post(f"/api/v1/queues/{queue}/jobs", json={"jobs": jobs, **extra})
        reply.raise_for_status()
        return reply.json()

    def claim(self, queue: str, count: int = 1, worker: str = "test-worker") -> list[dict]:
        reply = self.client.post(f"/api/v1/queues/{queue}/jobs/claim", json={"count": count, "worker": worker})
        reply.raise_for_status()
        return reply.json()["jobs"]

    def complete(self, queue: str, job: dict, result: dict | None = None) -> None:
        self.client.put(
            f"/api/v1/queues/{queue}/jobs/{job['id']}/complete",
            json={"lease_id": job["lease_id"], "result": result or {}},
        ).raise_for_status()

    def fail(self, queue: str, job: dict, error: str, retry: bool = False) -> None:
        self.client.put(
            f"/api/v1/queues/{queue}/jobs/{job['id']}/fail",
            json={"lease_id": job["lease_id"], "error": error, "retry": retry},
        ).raise_for_status()

    def progress(self, queue: str, job: dict, progress) -> None:
        self.client.put(
            f"/api/v1/queues/{queue}/jobs/{job['id']}/progress",
            json={"lease_id": job["lease_id"], "progress": progress},
        ).raise_for_status()

    def cancel(self, queue: str, job_id: str) -> None:
        self.client.delete(f"/api/v1/queues/{queue}/jobs/{job_id}").raise_for_status()

    def info(self, queue: str) -> httpx.Response:
        return self.client.get(f"/api/v1/queues/{queue}")

    def job(self, queue: str, job_id: str) -> dict:
        return self.client.get(f"/api/v1/queues/{queue}/jobs/{job_id}").json()

    def update(self, queue: str, **settings) -> dict:
        reply = self.client.patch(f"/api/v1/queues/{queue}", json=settings)
        reply.raise_for_status()
        return reply.json()

    def new_schedule(self, queue: str, name: str, **definition) -> dict:
        reply = self.client.post(f"/api/v1/queues/{queue}/schedules", json={"name": name, **definition})
        reply.raise_for_status()
        return reply.json()

    def schedule(self, queue: str, name: str) -> httpx.Response:
        return self.client.get(f"/api/v1/queues/{queue}/schedules/{name}")


def wait_for(predicate, timeout: float = 10.0):
    """Polls ``predicate`` until it is true (its value is returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def stay_marker(page) -> None:
    """Marks the page's window: if the page were reloaded the mark would be gone."""
    page.evaluate("window.__stayed = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__stayed === true"), "the page was reloaded"


class Watch:
    """What a page did that it should not: console errors, uncaught exceptions, requests off the loopback."""

    def __init__(self, page) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def offsite(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1" and not u.startswith("data:")]

    def check(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.offsite() == [], self.offsite()
