"""Fixtures for the dashboard tests: real ``starq serve`` processes with their own stores, and headless Chromium
driven by Playwright's sync API (its async API needs asyncio, and these tests run under pytest-trio)."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from dashboard.helpers import CHROMIUM, CHROMIUM_ARGS, KEY, KEY_STORE, Api, Watch
from serverproc import start_server


@pytest.fixture(scope="module")
def dash_server(tmp_path_factory):
    """A ``starq serve`` with an embedded store of its own, so the overview shows only this module's queues."""
    server = start_server("--data-dir", str(tmp_path_factory.mktemp("dashboard-store")))
    yield server
    server.stop()


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
