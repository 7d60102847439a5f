"""The three pages against a real server in headless Chromium: what they show, safely, at any width."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_overview_lists_every_queue_with_its_counts(dash_server, api, make_page):
    first = api.new_queue("mail", description="Outgoing mail")
    second = api.new_queue("thumbs")
    api.submit(first, {"n": 1}, {"n": 2}, {"n": 3})
    api.submit(second, {"n": 1}, delay=3600)
    page = make_page()
    page.goto(dash_server.url + "/")
    card = page.locator(f'.card[data-name="{first}"]')
    expect(card.locator('[data-f="name"]')).to_have_text(first)
    expect(card.locator('[data-f="description"]')).to_have_text("Outgoing mail")
    expect(card.locator('[data-f="pending"]')).to_have_text("3")
    other = page.locator(f'.card[data-name="{second}"]')
    expect(other.locator('[data-f="scheduled"]')).to_have_text("1")
    expect(other.locator('[data-f="pending"]')).to_have_text("0")
    expect(card.locator("svg.chart-svg")).to_have_count(1)
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    card.locator('[data-f="link"]').click()
    expect(page).to_have_url(re.compile(f"/queues/{first}$"))
    expect(page.locator('[data-count="pending"]')).to_have_text("3")


def test_job_page_shows_payload_result_and_history(dash_server, api, make_page):
    queue = api.new_queue()
    (submitted,) = api.submit(queue, {"image": "cat.png", "size": 512})
    (claimed,) = api.claim(queue, worker="resizer-7")
    api.complete(queue, claimed, {"thumbnail": "cat-512.png", "bytes": 20480})
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{submitted['id']}")
    expect(page.locator("#job-status")).to_have_text(re.compile("completed"))
    expect(page.locator("#job-payload")).to_contain_text('"image": "cat.png"')
    expect(page.locator("#job-result")).to_contain_text('"thumbnail": "cat-512.png"')
    expect(page.locator('[data-jf="worker"]')).to_have_text("resizer-7")
    events = page.locator("#history tr .what")
    expect(events).to_have_text(["submitted", "claimed", "completed"])
    expect(page.locator("#history tr").nth(1)).to_contain_text(claimed["lease_id"])
    expect(page.locator("#error-panel")).to_be_hidden()


def test_failed_job_page_shows_the_error(dash_server, api, make_page):
    queue = api.new_queue()
    (submitted,) = api.submit(queue, {"to": "nobody@example.com"})
    (claimed,) = api.claim(queue)
    api.fail(queue, claimed, "SMTP 550: mailbox unavailable")
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{submitted['id']}")
    expect(page.locator("#job-error")).to_have_text("SMTP 550: mailbox unavailable")
    expect(page.locator("#history tr.ev-failed")).to_contain_text("SMTP 550: mailbox unavailable")
    expect(page.locator("#no-result")).to_be_visible()


XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_TAG = '<img src=x onerror="window.__xss=3">'  # a tag is at most 64 characters


def test_markup_in_payloads_errors_and_descriptions_stays_text(dash_server, api, make_page):
    queue = api.new_queue(description=XSS)
    (submitted,) = api.submit(queue, {"html": XSS}, tags=[XSS_TAG], key=XSS, unique_key=XSS)
    (claimed,) = api.claim(queue, worker=XSS)
    api.fail(queue, claimed, XSS)
    api.new_schedule(queue, "markup", every=3600, payload={"html": XSS})
    page = make_page()
    page.goto(dash_server.url + "/")
    expect(page.locator(f'.card[data-name="{queue}"] [data-f="description"]')).to_have_text(XSS)
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator("#queue-description")).to_have_text(XSS)
    expect(page.locator("#job-rows tr")).to_have_count(1)
    expect(page.locator("#job-rows .preview")).to_contain_text("<script>")
    expect(page.locator("#job-rows .tag")).to_have_text(XSS_TAG)
    expect(page.locator("#worker-rows td").first).to_have_text(XSS)
    expect(page.locator('#schedule-markup [data-f="payload"]')).to_contain_text("<script>")
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{submitted['id']}")
    expect(page.locator("#job-error")).to_have_text(XSS)
    expect(page.locator("#job-payload")).to_contain_text("onerror")
    expect(page.locator('[data-jf="key"]')).to_have_text(XSS)
    expect(page.locator('[data-jf="unique_key"]')).to_have_text(XSS)
    expect(page.locator("#job-tags .tag")).to_have_text(XSS_TAG)
    page.wait_for_timeout(300)  # any injected handler would have run by now
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0


def test_pages_fit_a_phone_screen(dash_server, api, make_page):
    queue = api.new_queue(description="A queue with a fairly long description that must not widen the page")
    (job,) = api.submit(queue, {"text": "x" * 500}, tags=["a-rather-long-tag-name", "another-one"], key="k" * 200)
    api.new_schedule(
        queue, "a-schedule-with-a-long-name", cron="*/30 * * * * *", timezone="America/Argentina/Buenos_Aires"
    )
    page = make_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    for path in ("/", f"/queues/{queue}", f"/queues/{queue}/jobs/{job['id']}"):
        page.goto(dash_server.url + path)
        expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a 375px screen"


def test_unknown_queue_and_job_get_a_not_found_page(dash_server, api, make_page):
    queue = api.new_queue()
    page = make_page()
    response = page.goto(dash_server.url + "/queues/no-such-queue")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    response = page.goto(f"{dash_server.url}/queues/{queue}/jobs/01a00000-0000-7000-8000-000000000000")
    assert response.status == 404
    # Chromium logs each 404 document as a console error; those two are the point of this test.
    assert [e for e in page.watch.console_errors if "404" not in e] == []
    page.watch.console_errors.clear()


def test_no_console_errors_and_no_request_leaves_loopback(dash_server, api, make_page):
    queue = api.new_queue()
    (job,) = api.submit(queue, {"n": 1})
    page = make_page(key=True)
    for path in ("/", f"/queues/{queue}", f"/queues/{queue}/jobs/{job['id']}", "/favicon.ico"):
        page.goto(dash_server.url + path)
        page.wait_for_load_state("networkidle") if path == "/favicon.ico" else None
    page.goto(f"{dash_server.url}/queues/{queue}")
    page.get_by_role("button", name="Submit jobs").click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)  # a couple of live updates
    watch = page.watch
    assert watch.requests, "the page made no requests at all"
    assert any("/dashboard/events" in u for u in watch.requests)
    assert any(u.endswith("favicon.svg") for u in watch.requests)
    watch.check()


def test_pages_carry_a_strict_content_security_policy(dash_server):
    import httpx

    for path in ("/", "/queues/none-such"):
        csp = httpx.get(dash_server.url + path).headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # Static files are served by the package itself, with the right types.
    for name, kind in (
        ("dashboard.js", "javascript"),
        ("charts.js", "javascript"),
        ("dashboard.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        response = httpx.get(f"{dash_server.url}/dashboard/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"], name
