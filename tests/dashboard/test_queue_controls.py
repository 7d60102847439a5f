"""Flow control settings, job options, purging and running scheduled jobs now, from the dashboard: each through
the public API with the key kept in the browser, and checked through the API."""

from __future__ import annotations

import re

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


def test_the_job_page_shows_the_job_options_and_the_table_the_tags(dash_server, api, make_page):
    queue = api.new_queue()
    (plain,) = api.submit(queue, {"n": 0})
    (job,) = api.submit(
        queue,
        {"n": 1},
        key="customer-42",
        unique_key="order-1042",
        unique_for=600,
        timeout=90,
        max_retries=2,
        tags=["billing", "eu"],
    )
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{job['id']}")
    expect(page.locator('[data-jf="key"]')).to_have_text("customer-42")
    expect(page.locator('[data-jf="unique_key"]')).to_have_text("order-1042")
    expect(page.locator('[data-jf="unique_for"]')).to_have_text("10 min")
    expect(page.locator('[data-jf="timeout"]')).to_have_text("1 min 30 s")
    expect(page.locator('[data-jf="max_retries"]')).to_have_text("2")
    expect(page.locator("#job-tags .tag")).to_have_text(["billing", "eu"])
    expect(page.locator("#job-schedule")).to_be_hidden()
    expect(page.locator("#no-schedule")).to_have_text("–")
    # A job without options says what applies instead.
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{plain['id']}")
    expect(page.locator('[data-jf="key"]')).to_have_text("–")
    expect(page.locator('[data-jf="unique_for"]')).to_have_text("–")
    expect(page.locator('[data-jf="timeout"]')).to_have_text("none")
    expect(page.locator('[data-jf="max_retries"]')).to_have_text("the queue's")
    expect(page.locator("#job-tags .tag")).to_have_count(0)

    # The job table shows the tags, under a status tab too (the filter keeps working).
    page.goto(f"{dash_server.url}/queues/{queue}")
    rows = page.locator("#job-rows tr")
    expect(rows).to_have_count(2)
    expect(page.locator(f'#job-rows tr[data-key="{job["id"]}"] .tag')).to_have_text(["billing", "eu"])
    expect(page.locator(f'#job-rows tr[data-key="{plain["id"]}"] .tag')).to_have_count(0)
    api.claim(queue)  # the older job, plain
    page.get_by_role("tab", name="claimed").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-key", plain["id"])
    page.get_by_role("tab", name="pending").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".tag")).to_have_text(["billing", "eu"])
    expect(page).to_have_url(re.compile(r"\?status=pending$"))


def test_purging_a_status_asks_first_and_names_how_many(dash_server, api, make_page):
    queue = api.new_queue()
    api.submit(queue, *({"n": i} for i in range(6)))
    first, second, third, fourth = api.claim(queue, count=4)
    api.fail(queue, first, "bad")
    api.fail(queue, second, "bad")
    api.complete(queue, third)  # fourth stays claimed; two stay pending
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    purge = page.locator("#purge-button")
    expect(purge).to_be_hidden()  # nothing to purge on the "all" tab
    page.get_by_role("tab", name="claimed").click()
    expect(purge).to_be_hidden()  # claimed jobs are not purged
    page.get_by_role("tab", name="failed").click()
    expect(purge).to_have_text("Purge failed…")
    purge.click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm.get_by_role("heading")).to_have_text(f"Purge failed jobs of {queue}?")
    expect(confirm).to_contain_text(f"This removes the 2 failed jobs of {queue} for good.")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert api.info(queue).json()["failed"] == 2
    purge.click()
    confirm.get_by_role("button", name="Purge 2 jobs").click()
    expect(confirm).to_be_hidden()
    expect(page.locator('[data-count="failed"]')).to_have_text("0")
    expect(page.locator(".toast").last).to_have_text("Purged 2 failed jobs.")
    expect(page.locator("#job-rows tr")).to_have_count(0)
    expect(purge).to_be_disabled()
    counts = api.info(queue).json()
    assert (counts["failed"], counts["completed"], counts["claimed"], counts["pending"]) == (0, 1, 1, 2)

    # The count in an open confirmation follows the queue.
    page.get_by_role("tab", name="completed").click()
    purge.click()
    expect(confirm).to_contain_text("the 1 completed job of")
    api.complete(queue, fourth)
    expect(confirm).to_contain_text("the 2 completed jobs of")
    confirm.get_by_role("button", name="Purge 2 jobs").click()
    expect(page.locator('[data-count="completed"]')).to_have_text("0")

    # Pending jobs: the confirmation says they will never run.
    page.get_by_role("tab", name="pending").click()
    purge.click()
    expect(confirm).to_contain_text("2 pending jobs")
    expect(confirm).to_contain_text("they will never run")
    confirm.get_by_role("button", name="Purge 2 jobs").click()
    expect(page.locator('[data-count="pending"]')).to_have_text("0")
    assert api.info(queue).json()["pending"] == 0


def test_running_a_scheduled_job_now_from_the_table_and_from_its_page(dash_server, api, make_page):
    queue = api.new_queue()
    early, late = api.submit(queue, {"n": 1}, {"n": 2}, delay=3600)
    (ready,) = api.submit(queue, {"n": 3})
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator('[data-count="scheduled"]')).to_have_text("2")
    row = page.locator(f'#job-rows tr[data-key="{early["id"]}"]')
    expect(page.locator(f'#job-rows tr[data-key="{ready["id"]}"]').get_by_role("button")).to_be_hidden()
    stay_marker(page)
    row.get_by_role("button", name="Run now").click()
    expect(row.locator('[data-f="status-text"]')).to_have_text("pending")
    expect(row.get_by_role("button", name="Run now")).to_be_hidden()
    expect(page.locator('[data-count="scheduled"]')).to_have_text("1")
    expect(page.locator('[data-count="pending"]')).to_have_text("2")
    assert api.job(queue, early["id"])["status"] == "pending"
    assert api.job(queue, late["id"])["status"] == "scheduled"
    assert_not_reloaded(page)

    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{late['id']}")
    expect(page.get_by_role("button", name="Cancel job")).to_be_visible()
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#job-status")).to_have_text(re.compile("pending"))
    expect(page.get_by_role("button", name="Run now")).to_be_hidden()
    expect(page.locator("#history tr .what")).to_have_text(["submitted", "promoted"])
    assert api.job(queue, late["id"])["status"] == "pending"
    # Promoted jobs join the line as they are promoted: after the job that was pending all along.
    assert [j["id"] for j in api.claim(queue, count=3)] == [ready["id"], early["id"], late["id"]]


def test_cancelling_a_claimed_job_from_its_page(dash_server, api, make_page):
    queue = api.new_queue()
    (job,) = api.submit(queue, {"n": 1})
    (claimed,) = api.claim(queue, worker="slow-worker")
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text(re.compile("claimed"))
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text(re.compile("cancelled"))
    expect(page.locator(".toast").last).to_contain_text("its worker is told")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    # The worker learns at its next report.
    refused = api.client.put(
        f"/api/v1/queues/{queue}/jobs/{job['id']}/complete", json={"lease_id": claimed["lease_id"]}
    )
    assert refused.status_code == 409 and refused.json()["error"] == "job_cancelled"
