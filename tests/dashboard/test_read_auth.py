"""With ``STARQ_READ_AUTH=1`` the dashboard shows nothing until the browser presents a valid key."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect

from dashboard.helpers import KEY


def test_the_dashboard_asks_for_the_key_before_showing_anything(server_factory, make_page):
    server = server_factory(env={"STARQ_READ_AUTH": "1"})
    queue = f"private-{uuid.uuid4().hex[:8]}"
    httpx.post(server.url + "/api/v1/queues", json={"name": queue}, headers={"X-API-Key": KEY}).raise_for_status()
    page = make_page()
    page.goto(server.url + "/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
    assert queue not in page.content()
    assert not any("/dashboard/events" in u for u in page.watch.requests)  # no stream without a key

    dialog.get_by_label("Key").fill(KEY)
    dialog.get_by_role("button", name="Save key").click()
    expect(page.locator(f'.card[data-name="{queue}"]')).to_be_visible()
    expect(page.locator("#locked")).to_be_hidden()
    # The key travelled in a header only: never in a URL, never in a cookie.
    assert not any(KEY in u for u in page.watch.requests)
    assert page.context.cookies() == []

    # A job page of a read-protected server also loads its data through the stream.
    (job,) = httpx.post(
        f"{server.url}/api/v1/queues/{queue}/jobs", json={"payload": {"secret": 42}}, headers={"X-API-Key": KEY}
    ).json()["jobs"]
    page.goto(f"{server.url}/queues/{queue}/jobs/{job['id']}")
    expect(page.locator("#job-payload")).to_contain_text('"secret": 42')
    # Forgetting the key locks the dashboard again.
    page.get_by_role("button", name="API key ✓").click()
    page.locator("#key-dialog").get_by_role("button", name="Forget key").click()
    expect(page.locator("#key-dialog")).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
