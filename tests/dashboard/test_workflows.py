"""Workflows on the dashboard: dependencies and dependents on the job page, a waiting job released live, progress,
the batch page, the queue's recent events and its event settings; read-only mode, markup and a phone screen."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from dashboard.helpers import assert_not_reloaded, stay_marker, wait_for
from starq.worker_kit.protocol import JOB_STATUSES


def pipeline(api, queue: str, **extra) -> dict:
    """fetch → resize and thumbnail → publish (which runs even if one of those fails)."""
    return api.submit_many(
        queue,
        [
            {"payload": {"step": "fetch"}},
            {"payload": {"step": "resize"}, "depends_on": ["#0"]},
            {"payload": {"step": "thumbnail"}, "depends_on": ["#0"]},
            {"payload": {"step": "publish"}, "depends_on": ["#1", "#2"], "on_dependency_failure": "run"},
        ],
        **extra,
    )


def related(page, which: str):
    """The links of the job page's list of dependencies ("depends-on") or dependents, and their statuses."""
    items = page.locator(f"#{which} li")
    return items.locator('[data-f="link"]'), items.locator('[data-f="status-text"]')


def test_the_job_page_links_what_a_job_waits_for_and_what_waits_for_it(dash_server, api, make_page):
    queue = api.new_queue()
    fetch, resize, thumbnail, publish = pipeline(api, queue)["jobs"]
    (plain,) = api.submit(queue, {"step": "alone"})
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{publish['id']}")
    expect(page.locator("#job-status")).to_have_text(re.compile("waiting"))
    links, statuses = related(page, "depends-on")
    expect(links).to_have_text([resize["id"], thumbnail["id"]])
    expect(statuses).to_have_text(["waiting", "waiting"])
    expect(page.locator("#no-dependents")).to_be_visible()
    expect(page.locator('[data-jf="on_dependency_failure"]')).to_have_text("it runs anyway")

    links.first.click()
    expect(page).to_have_url(re.compile(f"/jobs/{resize['id']}$"))
    links, statuses = related(page, "depends-on")
    expect(links).to_have_text([fetch["id"]])
    expect(statuses).to_have_text(["pending"])
    links, statuses = related(page, "dependents")
    expect(links).to_have_text([publish["id"]])
    expect(statuses).to_have_text(["waiting"])
    expect(page.locator('[data-jf="on_dependency_failure"]')).to_have_text("it is cancelled")

    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{fetch['id']}")
    expect(related(page, "dependents")[0]).to_have_text([resize["id"], thumbnail["id"]])
    expect(page.locator("#no-depends")).to_be_visible()
    expect(page.locator('[data-jf="on_dependency_failure"]')).to_have_text("–")
    # A job outside any workflow shows none of it.
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{plain['id']}")
    expect(page.locator('[data-jf="priority"]')).to_have_text("0")
    expect(page.locator("#deps-panels")).to_be_hidden()
    expect(page.locator("#progress-panel")).to_be_hidden()
    expect(page.locator("#no-batch")).to_have_text("–")


def test_a_waiting_job_becomes_pending_live_when_its_dependency_completes(dash_server, api, make_page):
    queue = api.new_queue()
    fetch, resize, _, _ = pipeline(api, queue)["jobs"]
    page = make_page(key=True)
    page.goto(dash_server.url)
    card = page.locator(f'.card[data-name="{queue}"]')
    # Every status a card counts comes from the server's declaration, waiting first.
    expect(card.locator(".counts dt")).to_have_text([s for s in JOB_STATUSES if s != "cancelled"])
    expect(card.locator('[data-count="waiting"]')).to_have_text("3")
    expect(card.locator('[data-count="pending"]')).to_have_text("1")
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator(".strip [data-tab] .label")).to_have_text(list(JOB_STATUSES))
    expect(page.locator('.strip [data-count="waiting"]')).to_have_text("3")
    page.get_by_role("tab", name="waiting").click()
    expect(page.locator("#job-rows tr")).to_have_count(3)
    expect(page.locator("#job-rows .status.s-waiting")).to_have_count(3)

    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{resize['id']}")
    expect(page.locator("#job-status")).to_have_text(re.compile("waiting"))
    expect(page.get_by_role("button", name="Cancel job")).to_be_visible()  # waiting jobs can be cancelled
    _, statuses = related(page, "depends-on")
    expect(statuses).to_have_text(["pending"])
    stay_marker(page)
    (claimed,) = api.claim(queue)
    assert claimed["id"] == fetch["id"]  # the only claimable job
    expect(statuses).to_have_text(["claimed"])
    api.complete(queue, claimed)
    expect(page.locator("#job-status")).to_have_text(re.compile("pending"))
    expect(statuses).to_have_text(["completed"])
    expect(page.locator("#history tr .what")).to_have_text(["submitted", "pending"])
    assert_not_reloaded(page)
    assert api.info(queue).json()["waiting"] == 1  # publish still waits for resize and thumbnail


def test_progress_shows_live_as_a_bar_or_as_json(dash_server, api, make_page):
    queue = api.new_queue()
    (job,) = api.submit(queue, {"video": "talk.mp4"})
    (claimed,) = api.claim(queue)
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text(re.compile("claimed"))
    expect(page.locator("#progress-panel")).to_be_hidden()  # nothing reported yet
    stay_marker(page)
    bar = page.locator("#progress-bar")
    text = page.locator("#progress-text")
    api.progress(queue, claimed, 40)  # a number from 0 to 100: a percentage
    expect(text).to_have_text("40 %")
    assert bar.evaluate("b => [b.value, b.max]") == [40, 100]
    expect(page.locator("#progress-json")).to_be_hidden()
    api.progress(queue, claimed, {"frames": 750, "of": 1000, "stage": "encoding"})
    expect(text).to_have_text("750 of 1,000 frames · 75 %")
    expect(page.locator("#progress-json")).to_contain_text('"stage": "encoding"')
    assert bar.evaluate("b => [b.value, b.max]") == [750, 1000]
    api.progress(queue, claimed, {"done": 3, "total": 12, "eta_s": 40})  # "done" names the part done
    expect(text).to_have_text("3 of 12 · 25 %")
    # Anything else is shown as it is, as JSON.
    api.progress(queue, claimed, {"stage": "uploading", "attempt": 2})
    expect(page.locator("#progress-json")).to_contain_text('"stage": "uploading"')
    expect(page.locator("#progress-bar-box")).to_be_hidden()
    expect(page.locator("#progress-when")).to_have_text("the latest report, live")
    api.complete(queue, claimed)
    expect(page.locator("#progress-when")).to_have_text("the last report")
    assert_not_reloaded(page)


def test_the_batch_page_counts_its_jobs_and_links_the_callback(dash_server, api, make_page):
    queue = api.new_queue(max_retries=0)
    reply = api.submit_many(
        queue, [{"payload": {"n": n}} for n in range(3)], batch={"callback": {"payload": {"report": "nightly"}}}
    )
    batch = reply["batch_id"]
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{reply['jobs'][0]['id']}")
    page.locator("#job-batch").click()
    expect(page).to_have_url(re.compile(f"/queues/{queue}/batches/{batch}$"))
    count = lambda name: page.locator(f'[data-bf="{name}"]')  # noqa: E731
    expect(count("total")).to_have_text("3")
    expect(count("pending")).to_have_text("3")
    expect(page.locator("#batch-state")).to_have_text("running")
    expect(count("finished_at")).to_have_text("not yet")
    expect(page.locator("#callback-note")).to_have_text("submitted once every job of the batch has finished")
    expect(page.locator("#callback-link")).to_be_hidden()
    stay_marker(page)

    done, dead, cancelled = api.claim(queue, count=3)
    api.complete(queue, done)
    expect(count("completed")).to_have_text("1")
    expect(count("pending")).to_have_text("2")
    expect(page.locator("#batch-summary")).to_have_text("1 of 3 finished")
    api.fail(queue, dead, "no luck")
    api.cancel(queue, cancelled["id"])
    expect(page.locator("#batch-state")).to_have_text("finished")
    expect(count("pending")).to_have_text("0")
    expect(count("failed")).to_have_text("1")
    expect(count("cancelled")).to_have_text("1")
    expect(count("finished_at")).not_to_have_text("not yet")
    expect(page.locator("#batch-bar")).to_have_attribute(
        "aria-label", "3 of 3 finished: 1 completed, 1 failed, 1 cancelled, 0 unfinished"
    )
    link = page.locator("#callback-link")
    expect(page.locator("#callback-status")).to_have_text(re.compile("pending"))
    assert_not_reloaded(page)
    link.click()
    expect(page.locator("#job-payload")).to_contain_text('"report": "nightly"')
    expect(page.locator("#job-payload")).to_contain_text('"failed": 1')

    # A callback bound for another queue is named, not linked: the batch does not say which queue.
    here, other = api.new_queue(), api.new_queue()
    reply = api.submit_many(here, [{"payload": {}}], batch={"callback": {"queue": other}})
    (job,) = api.claim(here)
    api.complete(here, job)
    page.goto(f"{dash_server.url}/queues/{here}/batches/{reply['batch_id']}")
    expect(page.locator("#batch-state")).to_have_text("finished")
    expect(page.locator("#callback-note")).to_contain_text("submitted to another queue")
    expect(page.locator("#callback-link")).to_be_hidden()
    # A batch that does not exist gets the not-found page.
    response = page.goto(f"{dash_server.url}/queues/{queue}/batches/01a00000-0000-7000-8000-000000000000")
    assert response is not None and response.status == 404
    page.watch.console_errors.clear()  # Chromium logs the 404 document itself


def test_a_job_cancelled_by_its_dependency_links_to_it(dash_server, api, make_page):
    queue = api.new_queue(max_retries=0)
    reply = api.submit_many(queue, [{"payload": {"n": 1}}, {"payload": {"n": 2}, "depends_on": ["#0"]}])
    first, second = reply["jobs"]
    (claimed,) = api.claim(queue)
    api.fail(queue, claimed, "disk full")
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{second['id']}")
    expect(page.locator("#job-status")).to_have_text(re.compile("cancelled"))
    expect(page.locator("#error-title")).to_have_text("Cancelled: a dependency failed")
    expect(page.locator("#job-error")).to_have_text(f"dependency {first['id']} was dead-lettered")
    page.locator("#job-error a").click()
    expect(page).to_have_url(re.compile(f"/jobs/{first['id']}$"))
    expect(page.locator("#job-error")).to_have_text("disk full")
    expect(page.locator("#job-error a")).to_have_count(0)


def test_recent_events_follow_the_queue_and_the_editor_turns_them_on(dash_server, api, make_page):
    queue = api.new_queue()
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    off = page.locator("#events-off")
    expect(page.locator('[data-setting="events"]')).to_have_text("off")
    expect(off).to_contain_text("Events are off")
    expect(off).to_contain_text("Edit settings… and tick Keep an event log")
    expect(off).to_contain_text(f'PATCH /api/v1/queues/{queue} with {{"events": true}}')
    expect(page.locator("#event-rows")).to_be_hidden()
    stay_marker(page)

    page.get_by_role("button", name="Edit settings…").click()
    dialog = page.locator("#settings-dialog")
    expect(dialog.get_by_label("Events kept")).to_be_disabled()
    dialog.get_by_label("Keep an event log").check()
    dialog.get_by_label("Events kept").fill("500")
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()
    expect(page.locator('[data-setting="events"]')).to_have_text("on, about 500 kept")
    expect(off).to_be_hidden()
    expect(page.locator("#no-events")).to_be_visible()
    info = api.info(queue).json()
    assert (info["events"], info["events_max"], info["max_retries"]) == (True, 500, 3)

    (job,) = api.submit(queue, {"n": 1})
    (claimed,) = api.claim(queue, worker="encoder-1")
    api.complete(queue, claimed)
    rows = page.locator("#event-rows tr")
    expect(rows.locator('[data-f="event"]')).to_have_text(["completed", "claimed", "submitted"])
    expect(rows.locator('[data-f="status-text"]')).to_have_text(["completed", "claimed", "pending"])
    expect(rows.nth(1).locator('[data-f="detail"]')).to_have_text("worker encoder-1")
    expect(rows.first.locator('[data-f="link"]')).to_have_attribute("href", f"/queues/{queue}/jobs/{job['id']}")
    assert_not_reloaded(page)

    # A page opened later starts with the log's recent events.
    later = make_page()
    later.goto(f"{dash_server.url}/queues/{queue}")
    expect(later.locator("#event-rows tr [data-f='event']")).to_have_text(["completed", "claimed", "submitted"])
    # Off again: both pages say so, and close their streams of the log.
    open_before = api.client.get("/dashboard/streams").json()["open"]
    api.update(queue, events=False)
    expect(off).to_be_visible()
    expect(later.locator("#events-off")).to_be_visible()
    expect(page.locator('[data-setting="events"]')).to_have_text("off")
    wait_for(lambda: api.client.get("/dashboard/streams").json()["open"] <= open_before - 2)


def test_events_dropped_before_the_page_saw_them_are_noted(dash_server, api, make_page):
    queue = api.new_queue(events=True, events_max=100)
    api.submit(queue, *({"n": n} for n in range(400)))  # the log keeps about the last 100 of these 400 events
    page = make_page()

    # As a page that had seen event 1 before its connection broke: it resumes after it, with Last-Event-ID.
    def resume_after_the_first(route):
        route.continue_(headers={**route.request.headers, "last-event-id": "1"})

    page.route("**/dashboard/job-events?*", resume_after_the_first)
    page.goto(f"{dash_server.url}/queues/{queue}")
    note = page.locator("#events-dropped")
    expect(note).to_contain_text(re.compile(r"^\d+ events left the log before this page saw them"))
    missed = int(note.inner_text().split()[0])
    assert 1 < missed <= 300
    expect(page.locator("#event-rows tr")).to_have_count(50)  # the panel keeps its 50 newest
    expect(page.locator("#event-rows tr").first.locator('[data-f="event"]')).to_have_text("submitted")


def test_read_only_mode_shows_workflows_without_their_controls(dash_server, api, make_page):
    queue = api.new_queue(events=True)
    reply = pipeline(api, queue, batch={"callback": {"payload": {}}})
    waiting = reply["jobs"][1]
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{waiting['id']}")
    expect(page.locator("#readonly-note")).to_be_visible()
    expect(related(page, "depends-on")[1]).to_have_text(["pending"])
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    for button in page.locator("main button[data-needs-key]").all():
        expect(button).to_be_hidden()
    page.goto(f"{dash_server.url}/queues/{queue}/batches/{reply['batch_id']}")
    expect(page.locator('[data-bf="total"]')).to_have_text("4")
    assert page.locator("main button").count() == 0  # the batch page has no controls at all
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator("#event-rows tr")).to_have_count(4)  # reading events needs no key
    api.update(queue, events=False)
    off = page.locator("#events-off")
    expect(off).to_contain_text("Events are off")
    expect(off).not_to_contain_text("Edit settings", use_inner_text=True)  # which it could not use without a key
    expect(page.get_by_role("button", name="Edit settings…")).to_be_hidden()
    expect(page.locator("#settings-dialog")).to_be_hidden()


XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def test_markup_in_workflow_values_stays_text(dash_server, api, make_page):
    queue = api.new_queue(events=True, max_retries=0)
    reply = api.submit_many(
        queue,
        [{"payload": {"html": XSS}}, {"payload": {"n": 2}, "depends_on": ["#0"]}],
        batch={"callback": {"payload": {"html": XSS}}},
    )
    first, second = reply["jobs"]
    (claimed,) = api.claim(queue, worker=XSS)
    api.progress(queue, claimed, {"note": XSS, "done": 1, "of": 2})
    api.fail(queue, claimed, XSS)
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{first['id']}")
    expect(page.locator("#progress-json")).to_contain_text("<script>")
    expect(page.locator("#progress-text")).to_have_text("1 of 2 · 50 %")
    expect(page.locator("#job-error")).to_have_text(XSS)
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator("#event-rows tr.ev-failed [data-f='detail']")).to_contain_text(f"error {XSS}")
    expect(page.locator("#event-rows tr.ev-claimed [data-f='detail']")).to_have_text(f"worker {XSS}")
    page.goto(f"{dash_server.url}/queues/{queue}/batches/{reply['batch_id']}")
    page.locator("#callback-link").click()
    expect(page.locator("#job-payload")).to_contain_text("<img src=x")
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{second['id']}")
    expect(page.locator("#job-error a")).to_have_text(first["id"])
    # Markup in a batch id of a URL is a not-found page that shows it as text.
    response = page.goto(f"{dash_server.url}/queues/{queue}/batches/{XSS.replace('/', '')}")
    assert response is not None and response.status == 404
    page.watch.console_errors.clear()  # Chromium logs the 404 document itself
    page.wait_for_timeout(300)  # any injected handler would have run by now
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0


def test_workflow_pages_fit_a_phone_screen(dash_server, api, make_page):
    queue = api.new_queue(events=True, max_retries=0)
    reply = pipeline(api, queue, batch={"callback": {"payload": {}}})
    (claimed,) = api.claim(queue, worker="a-worker-with-a-rather-long-name-for-a-phone")
    api.progress(queue, claimed, {"bytes_downloaded": 123456789, "of": 987654321, "url": "x" * 200})
    page = make_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    for path in (
        f"/queues/{queue}/jobs/{claimed['id']}",
        f"/queues/{queue}/jobs/{reply['jobs'][3]['id']}",
        f"/queues/{queue}/batches/{reply['batch_id']}",
        f"/queues/{queue}",
    ):
        page.goto(dash_server.url + path)
        expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a 375px screen"
    expect(page.locator("#event-rows tr")).to_have_count(6)  # 4 submitted, claimed, progress
