"""Failure triage on the dashboard: the job search, selecting rows for bulk actions and their per-item results,
confirmations, the scheduled tab's run times, chart read-outs and ranges, counts that never overlap, a rejected
key, and a job's history as a table."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime

from playwright.sync_api import expect

from dashboard.helpers import KEY, KEY_STORE, Api


def _match(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.S)
    assert found is not None, (pattern, text)
    return found


def _row(page, job_id: str):
    return page.locator(f'#jobs-table tr[data-key="{job_id}"]')


def _pick(page, job_id: str) -> None:
    _row(page, job_id).locator('[data-f="pick"]').check()


def test_the_search_field_finds_jobs_by_id_payload_and_error_with_the_status_tab(dash_server, api, make_page):
    queue = api.new_queue()
    ada, bob, carol = api.submit(queue, {"to": "ada@example.com"}, {"to": "bob@example.com"}, {"to": "carol@mail.org"})
    claimed = {j["id"]: j for j in api.claim(queue, count=3)}
    api.fail(queue, claimed[ada["id"]], "SMTP 451: greylisted, try later")
    api.fail(queue, claimed[bob["id"]], "timeout after 30 s")
    api.complete(queue, claimed[carol["id"]])
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}")
    search = page.get_by_role("searchbox", name="Search jobs")
    rows = page.locator("#job-rows tr")
    expect(rows).to_have_count(3)

    search.fill("EXAMPLE.com")  # the payload, whatever the case
    expect(rows).to_have_count(2)
    expect(_row(page, carol["id"])).to_have_count(0)
    assert "q=EXAMPLE.com" in page.url
    search.fill("smtp 451")  # the error
    expect(rows).to_have_count(1)
    expect(_row(page, ada["id"])).to_be_visible()
    search.fill(bob["id"][:12])  # the start of an id
    expect(rows).to_have_count(1)
    expect(_row(page, bob["id"])).to_be_visible()

    # Combined with the status tab, both ways round, and kept in the URL across a reload.
    search.fill("example")
    page.get_by_role("tab", name="failed").click()
    expect(rows).to_have_count(2)
    page.get_by_role("tab", name="completed").click()
    expect(rows).to_have_count(0)
    expect(page.locator("#no-jobs")).to_have_text("No completed jobs match “example”.")
    search.fill("mail.org")
    expect(rows).to_have_count(1)
    page.reload()
    expect(page.get_by_role("searchbox", name="Search jobs")).to_have_value("mail.org")
    expect(page.get_by_role("tab", name="completed")).to_have_attribute("aria-selected", "true")
    expect(rows).to_have_count(1)
    expect(_row(page, carol["id"])).to_be_visible()

    # Live: a matching job submitted meanwhile shows up; clearing the search shows every job again.
    page.get_by_role("tab", name="all").click()
    search.fill("greylist")
    expect(rows).to_have_count(1)
    (late,) = api.submit(queue, {"note": "retry the greylisted ones"})
    expect(_row(page, late["id"])).to_be_visible()
    expect(rows).to_have_count(2)
    search.fill("")
    expect(rows).to_have_count(4)
    assert "q=" not in page.url


def test_loading_more_goes_on_with_the_search(dash_server, api, make_page):
    queue = api.new_queue()
    api.submit(queue, *({"kind": "needle", "n": i} for i in range(60)))
    api.submit(queue, *({"kind": "hay", "n": i} for i in range(30)))  # newer: the first page must skip them
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}?q=needle")
    rows = page.locator("#job-rows tr, #older-rows tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(60)
    expect(page.locator("#older-rows tr")).to_have_count(10)
    for preview in page.locator('#jobs-table [data-f="payload"]').all_text_contents():
        assert "needle" in preview


def test_bulk_actions_on_selected_rows_show_each_jobs_result(dash_server, api, make_page):
    queue = api.new_queue(max_retries=0)
    failed, completed, pending = api.submit(queue, {"n": 1}, {"n": 2}, {"n": 3})
    claimed = {j["id"]: j for j in api.claim(queue, count=2)}
    api.fail(queue, claimed[failed["id"]], "boom")
    api.complete(queue, claimed[completed["id"]])
    (scheduled,) = api.submit(queue, {"n": 4}, delay=3600)
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    bar = page.locator("#bulk-bar")
    expect(page.locator("#job-rows tr")).to_have_count(4)
    expect(bar).to_be_hidden()

    # Retry: the failed job goes back to pending; the completed and pending ones are refused, each saying why.
    for job in (failed, completed, pending):
        _pick(page, job["id"])
    expect(bar).to_be_visible()
    expect(page.locator("#bulk-count")).to_have_text("3 jobs selected")
    bar.get_by_role("button", name="Retry").click()
    result = page.locator("#bulk-result")
    expect(result.locator("#bulk-summary")).to_have_text("1 job back to pending; 2 jobs refused:")
    expect(result.locator("li")).to_have_count(2)
    expect(result.locator("li").first).to_contain_text("invalid_state")
    assert api.job(queue, failed["id"])["status"] == "pending"
    assert api.job(queue, completed["id"])["status"] == "completed"
    expect(page.locator("#bulk-count")).to_have_text("0 jobs selected")
    expect(bar.get_by_role("button", name="Cancel")).to_be_disabled()

    # Run now: the scheduled job becomes pending.
    _pick(page, scheduled["id"])
    bar.get_by_role("button", name="Run now").click()
    expect(result.locator("#bulk-summary")).to_have_text("1 job pending now.")
    expect(result.locator("li")).to_have_count(0)
    assert api.job(queue, scheduled["id"])["status"] == "pending"

    # Cancel, with every row selected from the header's box: the completed job is refused.
    page.get_by_label("Select every job shown").check()
    expect(page.locator("#bulk-count")).to_have_text("4 jobs selected")
    bar.get_by_role("button", name="Cancel").click()
    expect(result.locator("#bulk-summary")).to_have_text("3 jobs cancelled; 1 job refused:")
    expect(result.locator("li")).to_contain_text(completed["id"][:8])

    # Delete asks first: dismissed, nothing happens and the selection stays; accepted, the jobs are gone.
    page.get_by_label("Select every job shown").check()
    bar.get_by_role("button", name="Delete…").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm.get_by_role("heading")).to_have_text(f"Delete 4 jobs of {queue}?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert api.client.get(f"/api/v1/queues/{queue}/jobs/{failed['id']}").status_code == 200
    expect(page.locator("#bulk-count")).to_have_text("4 jobs selected")
    bar.get_by_role("button", name="Delete…").click()
    confirm.get_by_role("button", name="Delete 4 jobs").click()
    expect(confirm).to_be_hidden()
    expect(result.locator("#bulk-summary")).to_have_text("4 jobs deleted.")
    expect(page.locator("#job-rows tr")).to_have_count(0)
    for job in (failed, completed, pending, scheduled):
        assert api.client.get(f"/api/v1/queues/{queue}/jobs/{job['id']}").status_code == 404

    bar.get_by_role("button", name="Clear selection").click()
    expect(bar).to_be_hidden()


def test_the_bulk_bar_offers_every_bulk_action_and_no_checkbox_without_a_key(dash_server, api, make_page):
    from starq.server.engine.engine import BULK_ACTIONS

    queue = api.new_queue()
    api.submit(queue, {"n": 1})
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    offered = page.locator("#bulk-bar [data-bulk]").evaluate_all("(bs) => bs.map((b) => b.dataset.bulk)")
    assert sorted(offered) == sorted(BULK_ACTIONS)
    expect(page.locator('#job-rows [data-f="pick"]')).to_be_visible()
    reader = make_page()
    reader.goto(f"{dash_server.url}/queues/{queue}")
    expect(reader.locator("#job-rows tr")).to_have_count(1)
    expect(reader.locator('#job-rows [data-f="pick"]')).to_be_hidden()
    expect(reader.locator("#pick-all")).to_be_hidden()


def test_retry_all_asks_first(dash_server, api, make_page):
    queue = api.new_queue(max_retries=0)
    api.submit(queue, {"n": 1}, {"n": 2}, {"n": 3})
    for job in api.claim(queue, count=3):
        api.fail(queue, job, "no luck")
    page = make_page(key=True)
    page.goto(f"{dash_server.url}/queues/{queue}")
    expect(page.locator('[data-count="failed"]')).to_have_text("3")
    page.get_by_role("button", name="Retry all failed").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm.get_by_role("heading")).to_have_text(f"Retry the failed jobs of {queue}?")
    expect(confirm).to_contain_text("The 3 failed jobs of")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert api.info(queue).json()["failed"] == 3
    expect(page.locator('[data-count="failed"]')).to_have_text("3")
    page.get_by_role("button", name="Retry all failed").click()
    confirm.get_by_role("button", name="Retry 3 jobs").click()
    expect(page.locator('[data-count="failed"]')).to_have_text("0")
    assert api.info(queue).json()["failed"] == 0


def test_the_scheduled_tab_shows_when_each_job_runs(dash_server, api, make_page):
    queue = api.new_queue()
    (later,) = api.submit(queue, {"n": 1}, delay=3600)
    api.submit(queue, {"n": 2})
    run_at = api.job(queue, later["id"])["run_at"]
    page = make_page(timezone_id="UTC")
    page.goto(f"{dash_server.url}/queues/{queue}")
    header = page.locator("#jobs-table th.col-run-at")
    expect(header).to_be_hidden()
    page.get_by_role("tab", name="scheduled").click()
    expect(header).to_be_visible()
    expect(header).to_have_text("Runs at")
    row = _row(page, later["id"])
    shown = datetime.fromisoformat(run_at.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    expect(row.locator('[data-f="run-at"]')).to_have_text(shown)
    expect(row.locator('[data-f="run-in"]')).to_have_text(re.compile(r"^in (59 min|1 h)"))
    page.get_by_role("tab", name="pending").click()
    expect(header).to_be_hidden()


def _reading(page, chart: str) -> str:
    return page.locator(chart).get_attribute("data-reading") or ""


def test_chart_read_outs_and_the_range(dash_server, api, make_page):
    queue = api.new_queue(max_retries=0)
    api.submit(queue, *({"n": i} for i in range(5)))
    jobs = api.claim(queue, count=5)
    for job in jobs[:3]:
        api.complete(queue, job)
    api.fail(queue, jobs[3], "no")
    page = make_page(timezone_id="UTC")
    page.goto(f"{dash_server.url}/queues/{queue}")
    chart = page.locator("#throughput-chart")
    expect(chart.locator("svg")).to_have_attribute("data-completed", "3")

    # Under the pointer: the moment and both values, gone when the pointer leaves.
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    readout = chart.locator(".readout-text")
    expect(readout).to_contain_text(re.compile(r"\d\d:\d\d:\d\d–\d\d:\d\d:\d\d"))
    expect(readout).to_contain_text("completed 0/s")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 40)
    expect(chart.locator(".readout")).to_have_count(0)

    # From the keyboard: End is the current bucket (the time now falls in it), and the recent buckets hold the
    # 3 completed and 1 failed jobs, as rates per 5-second bucket.
    chart.focus()
    page.keyboard.press("End")
    expect(chart).to_have_attribute("data-reading", re.compile("completed"))
    start, end = _match(r"^(\S+)–(\S+)", _reading(page, "#throughput-chart")).groups()
    now = datetime.now(UTC).strftime("%H:%M:%S")
    assert start <= now <= end or end < start  # (or the bucket spans midnight)
    done = failed = 0.0
    for _ in range(4):
        reading = _reading(page, "#throughput-chart")
        done += float(_match(r"completed ([\d.]+)/s", reading).group(1))
        failed += float(_match(r"failed ([\d.]+)/s", reading).group(1))
        page.keyboard.press("ArrowLeft")
    assert (round(done * 5), round(failed * 5)) == (3, 1)

    # The wait chart reads out the job under the pointer.
    waits = page.locator("#wait-chart")
    waits.focus()
    page.keyboard.press("End")
    expect(waits).to_have_attribute("data-reading", re.compile(r"^claimed \d\d:\d\d:\d\d · waited [\d.]+ (ms|s)$"))

    # The range: 15 minutes by default, an hour on demand (the whole ring), kept in the URL.
    ticks = chart.locator("text")
    expect(ticks.filter(has_text="−10 min")).to_have_count(1)
    expect(ticks.filter(has_text="−45 min")).to_have_count(0)
    line = chart.locator(".line-completed")
    assert line.get_attribute("d").count("L") == 179
    page.get_by_role("tab", name="1 h").click()
    expect(page.get_by_role("tab", name="1 h")).to_have_attribute("aria-selected", "true")
    expect(ticks.filter(has_text="−45 min")).to_have_count(1)
    expect(ticks.filter(has_text="−10 min")).to_have_count(0)
    assert line.get_attribute("d").count("L") == 719
    assert "range=1h" in page.url
    expect(chart.locator("svg")).to_have_attribute("data-completed", "3")
    page.reload()
    expect(page.get_by_role("tab", name="1 h")).to_have_attribute("aria-selected", "true")
    expect(ticks.filter(has_text="−45 min")).to_have_count(1)


def test_the_queue_stream_refuses_a_bad_range_or_search(dash_server, api):
    queue = api.new_queue()
    for query, field in (("range=2h", "range"), ("q=" + "x" * 201, "q")):
        reply = api.client.get(f"/dashboard/events?view=queue&queue={queue}&{query}")
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"] == "validation_error"
        assert field in reply.json()["detail"]


BIG = [1_234_567, 98_765, 12_345_678, 55_555, 100_000, 7_654_321, 999_999]


def _fake_stream(page, url: str, api: Api, inflate) -> None:
    """Serves the page's live stream with the server's own snapshot of it, its counts made large by
    ``inflate``: what the page would get from a queue that size, without putting millions of jobs in the store."""
    html = api.client.get(url).text
    snapshot = json.loads(_match(r'id="initial-snapshot">(.*?)</script>', html).group(1))
    inflate(snapshot)
    body = "event: snapshot\ndata: " + json.dumps({"now": datetime.now(UTC).timestamp(), "data": snapshot}) + "\n\n"
    page.route(
        re.compile(r"/dashboard/events\?"),
        lambda route: route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body),
    )


def _overlaps(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and (b["y"] < a["y"] + a["height"])
    )


def _inside(inner: dict, outer: dict) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


BOXES = """(groups) => Array.from(document.querySelectorAll(groups)).map((group) => ({
  group: group.getBoundingClientRect().toJSON(),
  counts: Array.from(group.querySelectorAll("[data-count]")).map((el) => ({
    text: el.textContent,
    box: el.getBoundingClientRect().toJSON(),
    cell: el.parentElement.getBoundingClientRect().toJSON(),
  })),
}))"""


def _check_counts(page, groups: str, expect_text: str) -> None:
    shown = page.evaluate(BOXES, groups)
    assert shown and any(c["text"] == expect_text for g in shown for c in g["counts"])
    for group in shown:
        counts = group["counts"]
        for count in counts:
            assert _inside(count["box"], group["group"]), (count, group["group"])
            assert _inside(count["box"], count["cell"]), count  # whole, not cut by an ellipsis
        for a, b in itertools.combinations(counts, 2):
            assert not _overlaps(a["box"], b["box"]), (a, b)


def test_large_counts_never_overlap(dash_server, api, make_page):
    big = api.new_queue("big")
    others = [api.new_queue("small"), api.new_queue("small")]  # neighbours whose counts the fake stream inflates
    for start in range(0, 12_345, 1000):  # a real five-digit count
        jobs = [{"payload": {"n": n}} for n in range(start, min(start + 1000, 12_345))]
        api.client.post(f"/api/v1/queues/{big}/jobs", json={"jobs": jobs}).raise_for_status()

    def cards(snapshot):
        for card in snapshot["queues"]:
            if card["name"] != big:
                card["counts"] = dict(zip(card["counts"], itertools.cycle(BIG), strict=False))

    def strip(snapshot):
        counts = snapshot["queue"]["counts"]
        snapshot["queue"]["counts"] = {s: (12_345 if s == "pending" else n) for s, n in zip(counts, BIG, strict=False)}

    for width in (1280, 900, 375):
        page = make_page(viewport={"width": width, "height": 900})
        page.goto(dash_server.url + "/")
        expect(page.locator(f'.card[data-name="{big}"] [data-count="pending"]')).to_have_text("12,345")
        _check_counts(page, ".card", "12,345")
        _fake_stream(page, dash_server.url + "/", api, cards)
        page.reload()
        expect(page.locator(f'.card[data-name="{others[0]}"] [data-count="waiting"]')).to_have_text("1,234,567")
        _check_counts(page, ".card", "12,345,678")

        queue_url = f"{dash_server.url}/queues/{big}"
        page.unroute(re.compile(r"/dashboard/events\?"))
        page.goto(queue_url)
        _check_counts(page, ".strip", "12,345")
        _fake_stream(page, queue_url, api, strip)
        page.reload()
        expect(page.locator('.strip [data-count="waiting"]')).to_have_text("1,234,567")
        _check_counts(page, ".strip", "12,345,678")


def test_a_rejected_key_reopens_the_key_dialog(dash_server, api, make_page):
    queue = api.new_queue()
    page = make_page()
    page.context.add_init_script(f"localStorage.setItem({KEY_STORE!r}, 'rotated-away')")
    page.goto(f"{dash_server.url}/queues/{queue}")
    key_button = page.locator("#key-button")
    expect(key_button).to_have_text("API key ✓")  # nothing tells the page yet that the key is stale
    page.get_by_role("button", name="Pause").click()
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#key-error")).to_contain_text("Key rejected")
    expect(key_button).to_have_text("Key rejected")
    expect(page.locator(".toast.bad")).to_have_count(0)  # the dialog says it; no second message
    assert api.info(queue).json()["paused"] is False

    dialog.get_by_label("Key").fill(KEY)
    dialog.get_by_role("button", name="Save key").click()
    expect(dialog).to_be_hidden()
    expect(key_button).to_have_text("API key ✓")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#paused-badge")).to_be_visible()
    assert api.info(queue).json()["paused"] is True
    # The browser logs the refused write as a failed request: that one is expected here.
    page.watch.console_errors = [e for e in page.watch.console_errors if "401" not in e and "403" not in e]


TRACEBACK = 'Traceback (most recent call last):\n  File "thumbs.py", line 12, in handle\nValueError: bad image'


def test_job_history_is_a_table_with_the_full_error_on_demand(dash_server, api, make_page):
    queue = api.new_queue(max_retries=1, retry_delay=0)
    (job,) = api.submit(queue, {"image": "cat.png"})
    (first,) = api.claim(queue, worker="resizer-1")
    api.fail(queue, first, "timeout talking to the store", retry=True)
    (second,) = api.claim(queue, worker="resizer-2")
    api.fail(queue, second, TRACEBACK)
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{job['id']}")
    table = page.locator("#history-table")
    expect(table.locator("thead th")).to_have_text(["Time", "Event", "Worker", "Status", "Error", "Details"])
    rows = table.locator("tbody tr")
    expect(rows.locator(".what")).to_have_text(["submitted", "claimed", "failed", "claimed", "failed"])
    expect(rows.locator('[data-f="worker"]')).to_have_text(["", "resizer-1", "resizer-1", "resizer-2", "resizer-2"])
    expect(rows.locator('[data-f="status-text"]')).to_have_text(["pending", "claimed", "pending", "claimed", "failed"])
    expect(rows.nth(0).locator('[data-f="when"]')).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    # A one-line error is shown whole; a longer one by its first line, the rest a click away.
    expect(rows.nth(2).locator('[data-f="error"]')).to_have_text("timeout talking to the store")
    expect(rows.nth(2).locator("details")).to_have_count(0)
    last = rows.nth(4).locator('[data-f="error"]')
    expect(last.locator("summary")).to_have_text("Traceback (most recent call last):")
    full = last.locator("pre")
    expect(full).to_be_hidden()
    last.locator("summary").click()
    expect(full).to_be_visible()
    expect(full).to_have_text(TRACEBACK)


def test_job_history_shows_the_status_each_event_left_the_job_in(dash_server, api, make_page):
    """Events that name no status show the one the engine's declaration gives them (HISTORY_EVENT_STATUS), and
    a submission with a delay shows scheduled."""
    queue = api.new_queue()
    (job,) = api.submit(queue, {"image": "dog.png"}, delay=3600)
    api.client.post(f"/api/v1/queues/{queue}/jobs/{job['id']}/promote").raise_for_status()
    api.cancel(queue, job["id"])
    page = make_page()
    page.goto(f"{dash_server.url}/queues/{queue}/jobs/{job['id']}")
    rows = page.locator("#history-table tbody tr")
    expect(rows.locator(".what")).to_have_text(["submitted", "promoted", "cancelled"])
    expect(rows.locator('[data-f="status-text"]')).to_have_text(["scheduled", "pending", "cancelled"])
