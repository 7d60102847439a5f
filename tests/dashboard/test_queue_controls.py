"""The queue's settings, flow control included, edited from the dashboard through the public API with the key
kept in the browser, and checked through the API."""

from __future__ import annotations

from playwright.sync_api import expect

from dashboard.helpers import assert_not_reloaded, stay_marker


def setting(page, name: str):
    return page.locator(f'[data-setting="{name}"]')


def test_the_settings_editor_changes_the_queue(dash_server, api, make_page):
    queue = api.new_queue(description="nightly imports", max_retries=3)
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(setting(page, "rate_limit")).to_have_text("none")
    expect(setting(page, "concurrency")).to_have_text("unlimited")
    expect(setting(page, "key_concurrency")).to_have_text("unlimited")
    expect(setting(page, "claim_timeout")).to_have_text("10 min")
    expect(setting(page, "retention")).to_have_text("7 d")
    stay_marker(page)

    page.get_by_role("button", name="Edit settings…").click()
    dialog = page.locator("#settings-dialog")
    expect(dialog.get_by_label("Description")).to_have_value("nightly imports")
    expect(dialog.get_by_label("Jobs per window")).to_be_disabled()
    dialog.get_by_label("Max retries").fill("7")
    dialog.get_by_label("Concurrency 0 = unlimited", exact=True).fill("4")
    dialog.get_by_label("Concurrency per key").fill("1")
    dialog.get_by_label("Limit the rate").check()
    dialog.get_by_label("Jobs per window").fill("20")
    dialog.get_by_label("Window ms", exact=True).fill("2000")
    # A change made elsewhere while the dialog is open is not undone by saving: only what changed here is sent.
    api.update(queue, claim_timeout=99)
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()
    expect(setting(page, "rate_limit")).to_have_text("20 jobs per 2 s")
    expect(setting(page, "concurrency")).to_have_text("4 at once")
    expect(setting(page, "key_concurrency")).to_have_text("1 at once per key")
    expect(setting(page, "max_retries")).to_have_text("7")
    expect(setting(page, "claim_timeout")).to_have_text("1 min 39 s")
    info = api.info(queue).json()
    assert (info["concurrency"], info["key_concurrency"], info["rate_limit"]) == (4, 1, {"max": 20, "per_ms": 2000})
    assert (info["max_retries"], info["claim_timeout"], info["description"]) == (7, 99, "nightly imports")

    # The rate limit can be removed again (PATCH rate_limit: null); the rest stays.
    page.get_by_role("button", name="Edit settings…").click()
    expect(dialog.get_by_label("Limit the rate")).to_be_checked()
    expect(dialog.get_by_label("Jobs per window")).to_have_value("20")
    dialog.get_by_label("Limit the rate").uncheck()
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()
    expect(setting(page, "rate_limit")).to_have_text("none")
    info = api.info(queue).json()
    assert (info["rate_limit"], info["concurrency"], info["key_concurrency"]) == (None, 4, 1)

    # Saving without a change sends nothing; a value out of range is refused before anything is sent.
    page.get_by_role("button", name="Edit settings…").click()
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".toast").last).to_have_text("Nothing changed.")
    page.get_by_role("button", name="Edit settings…").click()
    dialog.get_by_label("Concurrency 0 = unlimited", exact=True).fill("-1")
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_visible()
    assert dialog.get_by_label("Concurrency 0 = unlimited", exact=True).evaluate("e => e.validity.rangeUnderflow")
    page.keyboard.press("Escape")
    assert api.info(queue).json()["concurrency"] == 4
    assert_not_reloaded(page)
