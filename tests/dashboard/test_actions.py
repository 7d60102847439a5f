"""Write actions from the dashboard, each through the public API with the key kept in the browser, and the
live updates they cause, without reloading the page."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from dashboard.helpers import KEY, assert_not_reloaded, stay_marker


def test_without_a_key_the_dashboard_is_read_only_and_says_so(dash_server, api, make_page):
    queue = api.new_queue()
    (job,) = api.submit(queue, {"n": 1}, delay=3600)
    api.new_schedule(queue, "hourly", every=3600)
    page = make_page()
    page.goto(dash_server.url + "/")
    expect(page.locator("#readonly-note")).to_be_visible()
    expect(page.locator("#readonly-note")).to_contain_text("Read-only")
    expect(page.get_by_role("button", name="New queue")).to_be_hidden()
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator("#readonly-note")).to_be_visible()
    expect(page.locator("#schedule-hourly")).to_be_visible()
    expect(page.locator("#job-rows tr")).to_have_count(1)
    for name in ("Submit jobs", "Pause", "Retry all failed", "Delete…", "Edit settings…", "New schedule…"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
    # No write button anywhere: not in the schedules' rows (pause, delete), nor the jobs' (run now).
    writes = page.locator("main button[data-needs-key]")
    assert writes.count() >= 9
    for button in writes.all():
        expect(button).to_be_hidden()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{job['id']}")
    for button in page.locator("main button[data-needs-key]").all():
        expect(button).to_be_hidden()


def test_entering_the_key_once_unlocks_writes_and_it_is_kept(dash_server, api, make_page):
    page = make_page()
    page.goto(dash_server.url + "/")
    page.locator("#readonly-note").get_by_role("button", name="Enter key").click()
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Key").fill("not-the-key")
    dialog.get_by_role("button", name="Save key").click()
    expect(dialog.locator(".form-error")).to_contain_text("not accepted")
    dialog.get_by_label("Key").fill(KEY)
    dialog.get_by_role("button", name="Save key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#readonly-note")).to_be_hidden()
    expect(page.get_by_role("button", name="New queue")).to_be_visible()
    assert page.evaluate("localStorage.getItem('starq.apiKey')") == KEY
    assert KEY not in page.url and not page.context.cookies()
    page.reload()
    expect(page.get_by_role("button", name="New queue")).to_be_visible()


def test_creating_a_queue_through_the_dialog(dash_server, api, make_page):
    page = make_page(key=True)
    page.goto(dash_server.url + "/")
    stay_marker(page)
    page.get_by_role("button", name="New queue").click()
    dialog = page.locator("#create-dialog")
    name = api.new_queue("probe").replace("probe", "made")  # a fresh, valid name
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Description").fill("made in the browser")
    dialog.get_by_label("Max retries").fill("5")
    dialog.get_by_label("Claim timeout").fill("30")
    dialog.get_by_label("Retry delay", exact=False).first.fill("2")
    dialog.get_by_label("Max retry delay").fill("60")
    dialog.get_by_label("Keep finished jobs").fill("3600")
    dialog.get_by_label("Skip duplicate payloads").check()
    dialog.get_by_role("button", name="Create queue").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f'.card[data-name="{name}"] [data-f="description"]')).to_have_text("made in the browser")
    assert_not_reloaded(page)
    info = api.info(name).json()
    assert (
        info["max_retries"],
        info["claim_timeout"],
        info["retry_delay"],
        info["retry_delay_max"],
        info["retention"],
        info["dedupe"],
    ) == (5, 30, 2, 60, 3600, True)
    # A name that exists already is refused, and the dialog says why.
    page.get_by_role("button", name="New queue").click()
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_role("button", name="Create queue").click()
    expect(dialog.locator(".form-error")).to_contain_text("already exists")
    page.watch.console_errors.clear()  # Chromium logs the 409 response itself


def test_submitting_a_job_updates_the_pending_count_without_a_reload(dash_server, api, make_page):
    queue = api.new_queue()
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator('[data-count="pending"]')).to_have_text("0")
    stay_marker(page)
    page.get_by_role("button", name="Submit jobs").click()
    dialog = page.locator("#submit-dialog")
    dialog.get_by_role("textbox", name="Payload").fill('{"to": "ada@example.com"}')
    dialog.get_by_label("Priority").fill("7")
    dialog.get_by_role("button", name="Submit", exact=True).click()
    expect(page.locator('[data-count="pending"]')).to_have_text("1")
    expect(page.locator("#job-rows tr")).to_have_count(1)
    expect(page.locator("#job-rows tr").first).to_contain_text("ada@example.com")
    expect(page.locator('#job-rows [data-f="priority"]')).to_have_text("7")
    # A job submitted elsewhere shows up too, above the first one, whose row is kept as it was (updates
    # touch rows in place, keyed by job id, so nothing flickers and nothing loses its place).
    page.locator("#job-rows tr").first.evaluate("row => { row.__kept = true; }")
    api.submit(queue, {"to": "grace@example.com"})
    expect(page.locator('[data-count="pending"]')).to_have_text("2")
    expect(page.locator("#job-rows tr").first).to_contain_text("grace@example.com")
    assert page.locator("#job-rows tr").nth(1).evaluate("row => row.__kept === true")
    # A delayed job counts as scheduled.
    dialog.get_by_label("Delay").fill("3600")
    dialog.get_by_role("button", name="Submit", exact=True).click()
    expect(page.locator('[data-count="scheduled"]')).to_have_text("1")
    # Invalid JSON is refused in the dialog.
    dialog.get_by_role("textbox", name="Payload").fill("{not json")
    dialog.get_by_role("button", name="Submit", exact=True).click()
    expect(dialog.locator(".form-error")).to_contain_text("not valid JSON")
    assert_not_reloaded(page)


def test_uploading_a_jsonl_file_shows_progress(dash_server, api, make_page):
    queue = api.new_queue()
    lines = [json.dumps({"n": i}) for i in range(1100)] + [json.dumps({"payload": {"n": "high"}, "priority": 9})]
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    page.get_by_role("button", name="Submit jobs").click()
    dialog = page.locator("#submit-dialog")
    dialog.get_by_role("tab", name="JSONL file").click()
    dialog.locator("#sj-file").set_input_files(
        files=[{"name": "jobs.jsonl", "mimeType": "application/x-ndjson", "buffer": "\n".join(lines).encode()}]
    )
    dialog.get_by_role("button", name="Submit", exact=True).click()
    expect(dialog.locator("#sj-progress-text")).to_have_text("1,101 / 1,101 jobs submitted")
    assert dialog.locator("#sj-progress").evaluate("p => p.value === p.max")
    expect(page.locator('[data-count="pending"]')).to_have_text("1,101")
    assert api.info(queue).json()["pending"] == 1101
    # The wrapped line kept its priority: it is claimed first.
    assert api.claim(queue)[0]["payload"] == {"n": "high"}


def test_a_working_worker_moves_the_counts_and_the_chart(dash_server, api, make_page):
    queue = api.new_queue()
    api.submit(queue, *({"n": i} for i in range(8)))
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}")
    chart = page.locator("#throughput-chart svg")
    expect(chart).to_have_attribute("data-completed", "0")
    stay_marker(page)
    for job in api.claim(queue, count=6, worker="worker-a"):
        api.complete(queue, job)
    (job,) = api.claim(queue, worker="worker-b")
    api.fail(queue, job, "boom")
    expect(page.locator('[data-count="completed"]')).to_have_text("6")
    expect(page.locator('[data-count="failed"]')).to_have_text("1")
    expect(page.locator('[data-count="pending"]')).to_have_text("1")
    expect(chart).to_have_attribute("data-completed", "6")
    expect(chart).to_have_attribute("data-failed", "1")
    expect(page.locator("#wait-chart svg")).to_have_attribute("data-points", "6")
    expect(page.locator("#worker-rows tr")).to_have_count(2)
    expect(page.locator("#worker-rows")).to_contain_text("worker-a")
    # The overview's sparkline moved as well.
    page.goto(dash_server.url + "/")
    expect(page.locator(f'.card[data-name="{queue}"] svg')).to_have_attribute("data-completed", "6")
    expect(page.locator(f'.card[data-name="{queue}"] [data-f="workers"]')).to_have_text("2")


def test_pause_and_resume(dash_server, api, make_page):
    queue = api.new_queue()
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#paused-badge")).to_be_visible()
    assert api.info(queue).json()["paused"] is True
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#paused-badge")).to_be_hidden()
    assert api.info(queue).json()["paused"] is False


def test_retry_all_failed_then_delete_the_queue(dash_server, api, make_page):
    queue = api.new_queue()
    api.submit(queue, {"n": 1}, {"n": 2}, {"n": 3})
    for job in api.claim(queue, count=2):
        api.fail(queue, job, "no luck")
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator('[data-count="failed"]')).to_have_text("2")
    page.get_by_role("button", name="Retry all failed").click()
    confirm = page.locator("#confirm-dialog")
    confirm.get_by_role("button", name="Retry 2 jobs").click()
    expect(page.locator('[data-count="failed"]')).to_have_text("0")
    expect(page.locator('[data-count="pending"]')).to_have_text("3")
    expect(page.locator(".toast")).to_contain_text("2 failed jobs back to pending")

    page.get_by_role("button", name="Delete…").click()
    dialog = page.locator("#delete-dialog")
    expect(dialog.get_by_role("heading")).to_contain_text(queue)
    confirm = dialog.get_by_role("button", name=f"Delete {queue}")
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type").fill(queue[:-1])
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type").fill(queue)
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(page).to_have_url(dash_server.url + "/")
    expect(page.locator(f'.card[data-name="{queue}"]')).to_have_count(0)
    assert api.info(queue).status_code == 404


def test_retry_and_cancel_a_job_from_its_page(dash_server, api, make_page):
    queue = api.new_queue()
    (job,) = api.submit(queue, {"n": 1})
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{job['id']}")
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text(re.compile("cancelled"))
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#job-status")).to_have_text(re.compile("pending"))
    expect(page.locator("#history tr .what")).to_have_text(["submitted", "cancelled", "retried"])
    assert api.job(queue, job["id"])["status"] == "pending"


def test_status_tabs_and_loading_older_jobs(dash_server, api, make_page):
    queue = api.new_queue()
    api.submit(queue, *({"n": i} for i in range(120)))
    for job in api.claim(queue, count=3):
        api.fail(queue, job, "bad input")
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}")
    rows = page.locator("#job-rows tr, #older-rows tr")
    expect(rows).to_have_count(50)
    more = page.get_by_role("button", name="Load more")
    more.click()
    expect(rows).to_have_count(100)
    more.click()
    expect(rows).to_have_count(120)
    expect(more).to_be_hidden()
    assert len(set(rows.evaluate_all("rs => rs.map(r => r.dataset.key)"))) == 120
    page.get_by_role("tab", name="failed").click()
    expect(rows).to_have_count(3)
    expect(page).to_have_url(re.compile(r"\?status=failed$"))
    expect(page.locator("#job-rows .status").first).to_have_text(re.compile("failed"))
    # The strip's counts are tabs too; the URL keeps the choice across a reload.
    page.reload()
    expect(rows).to_have_count(3)
    page.get_by_role("tab", name="all").click()
    expect(rows).to_have_count(50)


def test_dialogs_work_from_the_keyboard(dash_server, api, make_page):
    page = make_page(key=True)
    page.goto(dash_server.url + "/")
    opener = page.get_by_role("button", name="New queue")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#create-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    # Tab never reaches the page behind the open dialog (after the last field it may pass through the
    # browser's own UI, where nothing in the document has focus).
    page.keyboard.press("Enter")
    inside = 0
    for _ in range(15):
        page.keyboard.press("Tab")
        where = page.evaluate("""() => {
            const a = document.activeElement;
            if (!a || a === document.body) return "none";
            return document.getElementById("create-dialog").contains(a) ? "dialog" : "page";
        }""")
        assert where != "page"
        inside += where == "dialog"
    assert inside >= 10
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
