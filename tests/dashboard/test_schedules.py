"""A queue's schedules on its page: listed live, paused and resumed, created and deleted from the page, and
linked to the jobs they make (and back)."""

from __future__ import annotations

import re
from datetime import datetime

from playwright.sync_api import expect

from dashboard.helpers import assert_not_reloaded, stay_marker


def shown_time(iso: str) -> str:
    """An API time as the dashboard shows it in a browser whose time zone is UTC."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def test_a_schedule_created_through_the_api_shows_up_live(dash_server, api, make_page):
    queue = api.new_queue()
    page = make_page(timezone_id="UTC")
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator("#no-schedules")).to_be_visible()
    expect(page.locator("#schedules-table")).to_be_hidden()
    stay_marker(page)
    made = api.new_schedule(
        queue, "nightly", cron="0 3 * * *", timezone="Europe/Berlin", payload={"report": "daily"}, tags=["pdf"]
    )
    row = page.locator("#schedule-nightly")
    expect(row).to_be_visible()
    expect(page.locator("#no-schedules")).to_be_hidden()
    expect(row.locator('[data-f="when"]')).to_have_text("0 3 * * *")
    expect(row.locator('[data-f="zone"]')).to_have_text("Europe/Berlin")
    expect(row.locator('[data-f="next"]')).to_have_text(shown_time(made["next_run_at"]))
    expect(row.locator('[data-f="next-in"]')).to_have_text(re.compile(r"^in \d"))
    expect(row.locator('[data-f="never"]')).to_have_text("never")
    expect(row.locator('[data-f="last-link"]')).to_be_hidden()
    expect(row.locator('[data-f="payload"]')).to_have_text('{"report":"daily"}')
    expect(row.locator('[data-f="paused"]')).to_be_hidden()
    # An interval schedule, listed by name with the others.
    api.new_schedule(queue, "a-heartbeat", every=90, paused=True)
    expect(page.locator("#schedule-rows tr")).to_have_count(2)
    expect(page.locator("#schedule-rows .sched-name")).to_have_text(["a-heartbeat", "nightly"])
    other = page.locator("#schedule-a-heartbeat")
    expect(other.locator('[data-f="when"]')).to_have_text("every 1 min 30 s")
    expect(other.locator('[data-f="zone"]')).to_have_text("")
    expect(other.locator('[data-f="paused"]')).to_be_visible()
    expect(other.locator('[data-f="next"]')).to_have_text("paused")
    # Deleted elsewhere: gone from the page.
    api.client.delete(f"/api/v1/queues/{queue}/schedules/nightly").raise_for_status()
    expect(page.locator("#schedule-rows tr")).to_have_count(1)
    assert_not_reloaded(page)


def test_pausing_and_resuming_a_schedule_from_the_page(dash_server, api, make_page):
    queue = api.new_queue()
    api.new_schedule(queue, "hourly", every=3600)
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    row = page.locator("#schedule-hourly")
    expect(row.locator('[data-f="paused"]')).to_be_hidden()
    row.get_by_role("button", name="Pause schedule hourly").click()
    expect(row.locator('[data-f="paused"]')).to_be_visible()
    expect(row.locator('[data-f="next"]')).to_have_text("paused")
    schedule = api.schedule(queue, "hourly").json()
    assert schedule["paused"] is True and schedule["next_run_at"] == ""
    # The page's own Pause button (the queue's) is untouched.
    assert api.info(queue).json()["paused"] is False
    row.get_by_role("button", name="Resume schedule hourly").click()
    expect(row.locator('[data-f="paused"]')).to_be_hidden()
    expect(row.locator('[data-f="next-in"]')).to_have_text(re.compile(r"^in (59 min|1 h)"))
    schedule = api.schedule(queue, "hourly").json()
    assert schedule["paused"] is False and schedule["next_run_at"] != ""


def test_creating_a_schedule_in_the_dialog_and_deleting_it_after_confirming(dash_server, api, make_page):
    queue = api.new_queue()
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    stay_marker(page)
    page.get_by_role("button", name="New schedule…").click()
    dialog = page.locator("#schedule-dialog")
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_label("Name").fill("digest")
    dialog.get_by_label("Cron expression", exact=True).fill("*/5 * * * *")
    dialog.get_by_label("Time zone").fill("America/New_York")
    dialog.get_by_label("Payload").fill('{"kind": "digest"}')
    dialog.get_by_role("button", name="Create schedule").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#schedule-digest [data-f='when']")).to_have_text("*/5 * * * *")
    made = api.schedule(queue, "digest").json()
    assert (made["cron"], made["every"], made["timezone"], made["payload"]) == (
        "*/5 * * * *",
        None,
        "America/New_York",
        {"kind": "digest"},
    )

    # An interval instead of a cron expression; the dialog was reset after the first one.
    page.get_by_role("button", name="New schedule…").click()
    expect(dialog.get_by_label("Payload")).to_have_value("{}")
    dialog.get_by_label("Name").fill("ping")
    dialog.get_by_label("every few seconds").check()
    expect(dialog.get_by_label("Cron expression", exact=True)).to_be_hidden()
    dialog.get_by_label("Every s", exact=True).fill("45")
    dialog.get_by_role("button", name="Create schedule").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#schedule-ping [data-f='when']")).to_have_text("every 45 s")
    made = api.schedule(queue, "ping").json()
    assert (made["cron"], made["every"], made["timezone"], made["payload"]) == (None, 45, "UTC", {})

    # The server's refusals are shown in the dialog: a bad expression, a taken name, a bad payload.
    page.get_by_role("button", name="New schedule…").click()
    dialog.get_by_label("Name").fill("broken")
    dialog.get_by_label("Cron expression", exact=True).fill("every day at noon")
    dialog.get_by_role("button", name="Create schedule").click()
    expect(dialog.locator(".form-error")).to_contain_text("not a valid expression")
    dialog.get_by_label("Name").fill("digest")
    dialog.get_by_label("Cron expression", exact=True).fill("0 * * * *")
    dialog.get_by_role("button", name="Create schedule").click()
    expect(dialog.locator(".form-error")).to_contain_text("already exists")
    dialog.get_by_label("Payload").fill("[1, 2]")
    dialog.get_by_role("button", name="Create schedule").click()
    expect(dialog.locator(".form-error")).to_contain_text("must be a JSON object")
    page.keyboard.press("Escape")
    page.watch.console_errors.clear()  # Chromium logs the 422 and 409 responses itself

    # Deleting asks first; Cancel keeps it.
    confirm = page.locator("#confirm-dialog")
    page.get_by_role("button", name="Delete schedule digest").click()
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role("heading")).to_have_text("Delete schedule “digest”?")
    expect(confirm).to_contain_text("The jobs it made stay")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert api.schedule(queue, "digest").status_code == 200
    page.get_by_role("button", name="Delete schedule digest").click()
    confirm.get_by_role("button", name="Delete schedule").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#schedule-digest")).to_have_count(0)
    expect(page.locator("#schedule-ping")).to_be_visible()
    assert api.schedule(queue, "digest").status_code == 404
    assert_not_reloaded(page)


def test_a_run_links_to_its_job_and_the_job_back_to_its_schedule(dash_server, api, make_page):
    queue = api.new_queue()
    api.new_schedule(queue, "every-second", every=1, payload={"tick": True}, tags=["cron"])
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    row = page.locator("#schedule-every-second")
    link = row.locator('[data-f="last-link"]')
    expect(link).to_be_visible()
    expect(row.locator('[data-f="never"]')).to_be_hidden()
    # Paused, it makes no more jobs, so the link stays on its last one.
    row.get_by_role("button", name="Pause schedule every-second").click()
    expect(row.locator('[data-f="paused"]')).to_be_visible()
    schedule = api.schedule(queue, "every-second").json()
    expect(link).to_have_attribute("href", f"/queues/{queue}/jobs/{schedule['last_job_id']}")
    # The jobs it made carry its tags, in the job table as well.
    expect(page.locator("#job-rows tr").first.locator(".tag")).to_have_text(["cron"])
    link.click()
    expect(page).to_have_url(re.compile(f"/jobs/{schedule['last_job_id']}$"))
    assert api.job(queue, schedule["last_job_id"])["schedule"] == "every-second"
    back = page.locator("#job-schedule")
    expect(back).to_have_text("every-second")
    expect(page.locator("#job-payload")).to_contain_text('"tick": true')
    back.click()
    expect(page).to_have_url(re.compile(f"/queues/{queue}#schedule-every-second$"))
    target = page.locator("#schedule-every-second")
    expect(target).to_have_class(re.compile(r"\btarget\b"))
    expect(target).to_be_in_viewport()
