"""Fixtures for the dashboard tests: real ``starq serve`` processes with their own stores, and headless Chromium
driven by Playwright's sync API (its async API needs asyncio, and these tests run under pytest-trio)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import sync_playwright
from serverproc import start_server

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


@pytest.fixture(scope="module")
def dash_server(tmp_path_factory):
    """A ``starq serve`` with an embedded store of its own, so the overview shows only this module's queues."""
    server = start_server("--data-dir", str(tmp_path_factory.mktemp("dashboard-store")))
    yield server
    server.stop()


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

    def info(self, queue: str) -> httpx.Response:
        return self.client.get(f"/api/v1/queues/{queue}")

    def job(self, queue: str, job_id: str) -> dict:
        return self.client.get(f"/api/v1/queues/{queue}/jobs/{job_id}").json()


@pytest.fixture(scope="module")
def api(dash_server):
    client = Api(dash_server.url)
    yield client
    client.client.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watch:
    """What a page did that it should not: console errors, uncaught exceptions, requests off the loopback."""

    def __init__(self, page) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def offsite(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1" and not u.startswith("data:")]

    def check(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.offsite() == [], self.offsite()


@pytest.fixture
def make_page(browser):
    """Opens a page in a fresh browser context (own storage); ``key=True`` stores the API key beforehand.
    Every page is checked on teardown for console errors, script errors and requests off 127.0.0.1."""
    contexts = []
    watches = []

    def make(key: bool = False, **context_options):
        context = browser.new_context(**context_options)
        contexts.append(context)
        if key:
            context.add_init_script(f"localStorage.setItem({KEY_STORE!r}, {KEY!r})")
        page = context.new_page()
        page.set_default_timeout(8000)
        watch = Watch(page)
        watches.append(watch)
        page.watch = watch
        return page

    yield make
    for context in contexts:
        context.close()
    for watch in watches:
        watch.check()
