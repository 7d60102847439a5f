"""Screenshots of the overview, a queue page (with a chart's read-out), failure triage (a search on the failed
tab, two jobs ticked and the bulk bar), a job page (its history table, an error opened), a job in a workflow and
a batch page, in the light and the dark theme, taken while a worker is busy. They are written to
``test-artifacts/screenshots/`` (ignored by git) for a reviewer to look at; ``docs/screenshots/`` holds a
committed copy of some of them, made smaller with ``pngquant --quality 70-90 --strip``.
``STARQ_SCREENSHOT_WARMUP`` (seconds of simulated traffic before the shots, default 3) can be raised to fill more
of the throughput charts."""

from __future__ import annotations

import math
import os
import random
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from dashboard.helpers import Api

OUT = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WARMUP = float(os.environ.get("STARQ_SCREENSHOT_WARMUP", "3"))
# The rest of the first error, as a worker's traceback would give it.
TRACE = (
    '\n  File "mailer.py", line 88, in send\n    smtp.sendmail(sender, to, body)\n'
    "smtplib.SMTPDataError: (451, b'4.7.1 Try again later')"
)
ERRORS = [
    "SMTP 451: temporary failure, try again later",
    "timeout after 30 s talking to mx.example.net",
    "PIL.UnidentifiedImageError: cannot identify image file",
]


def simulate(api: Api, stop: threading.Event) -> None:
    """Submits jobs at a varying rate while two workers drain them, a few of them failing."""
    rng = random.Random(7)
    started = time.monotonic()
    n = 0
    while not stop.is_set():
        t = time.monotonic() - started
        burst = 2 + int(3 * (1 + math.sin(t / 4)))
        api.submit(
            "emails",
            *({"to": f"user{n + i}@example.com", "template": "welcome"} for i in range(burst)),
            tags=["welcome"],
        )
        api.submit(
            "thumbnails", *({"image": f"uploads/{n + i:05d}.jpg", "sizes": [128, 512]} for i in range(burst // 2 + 1))
        )
        n += burst
        for queue, worker in (("emails", "mailer-1"), ("emails", "mailer-2"), ("thumbnails", "resizer-a")):
            for job in api.claim(queue, count=rng.randint(1, 3), worker=worker):
                if rng.random() < 0.1:
                    api.fail(queue, job, rng.choice(ERRORS), retry=rng.random() < 0.5)
                else:
                    api.complete(queue, job, {"delivered": True, "ms": rng.randint(20, 900)})
        stop.wait(0.25)


@pytest.fixture(scope="module")
def busy(api):
    api.client.post(
        "/api/v1/queues",
        json={
            "name": "emails",
            "description": "Transactional mail: welcome, receipts, resets",
            "max_retries": 5,
            "retry_delay": 2,
            "concurrency": 8,
            "key_concurrency": 1,
            "rate_limit": {"max": 50, "per_ms": 1000},
            "events": True,
        },
    ).raise_for_status()
    api.new_schedule(
        "emails", "daily-digest", cron="0 8 * * *", timezone="Europe/London", payload={"template": "digest"}
    )
    api.new_schedule("emails", "weekly-newsletter", cron="0 9 * * 1", timezone="America/New_York", paused=True)
    api.client.post(
        "/api/v1/queues", json={"name": "thumbnails", "description": "Resize uploaded images"}
    ).raise_for_status()
    api.client.post("/api/v1/queues", json={"name": "reports", "description": "Nightly PDF reports"}).raise_for_status()
    api.submit("reports", *({"report": f"sales-{d}", "format": "pdf"} for d in range(4)), delay=3600)
    api.new_schedule(
        "reports", "nightly-sales", cron="0 3 * * *", timezone="Europe/Berlin", payload={"report": "sales"}
    )
    api.client.post("/api/v1/queues/reports/pause").raise_for_status()
    # One job with a full history: a failed attempt, a retry, then success.
    (job,) = api.submit(
        "emails",
        {
            "to": "ada@example.com",
            "template": "receipt",
            "order": 1042,
            "items": [{"sku": "A-100", "qty": 2}, {"sku": "B-7", "qty": 1}],
        },
        priority=9,
        key="customer-1042",
        unique_key="receipt-1042",
        timeout=60,
        tags=["receipt", "eu"],
    )
    (claimed,) = api.claim("emails", worker="mailer-1")
    api.fail("emails", claimed, ERRORS[0] + TRACE, retry=True)
    time.sleep(2.2)  # its backoff
    api.client.post("/api/v1/queues/emails/jobs/claim", json={"count": 1, "worker": "mailer-2"})
    current = api.job("emails", job["id"])
    api.complete("emails", current, {"message_id": "<20261129.1042@mail.example.com>", "accepted": True})
    # Failures to triage: dead jobs (no retry asked), most of them the mail server's.
    api.submit("emails", *({"to": f"user{n}@example.org", "template": "reset"} for n in range(6)), tags=["reset"])
    for n, dead in enumerate(api.claim("emails", count=6, worker="mailer-2")):
        api.fail("emails", dead, ERRORS[n % 2] if n < 5 else ERRORS[2])
    workflow = media_pipeline(api)
    stop = threading.Event()
    thread = threading.Thread(target=simulate, args=(api, stop))
    thread.start()
    time.sleep(WARMUP)
    yield {"job": job["id"], **workflow}
    stop.set()
    thread.join()


def media_pipeline(api: Api) -> dict[str, str]:
    """A video's pipeline as one batch: fetched, three renditions of which one failed and one is being encoded
    (reporting progress), and a publish step waiting for them."""
    api.client.post(
        "/api/v1/queues", json={"name": "media", "description": "Video pipeline", "max_retries": 0}
    ).raise_for_status()
    reply = api.submit_many(
        "media",
        [
            {"payload": {"step": "fetch", "url": "https://example.com/talk.mov"}},
            {"payload": {"step": "transcode", "height": 1080}, "depends_on": ["#0"]},
            {"payload": {"step": "transcode", "height": 720}, "depends_on": ["#0"]},
            {"payload": {"step": "transcode", "height": 480}, "depends_on": ["#0"]},
            {"payload": {"step": "publish"}, "depends_on": ["#1", "#2", "#3"], "on_dependency_failure": "run"},
        ],
        batch={"callback": {"payload": {"notify": "video-team@example.com"}}},
    )
    (fetch,) = api.claim("media", worker="fetcher-1")
    api.complete("media", fetch, {"bytes": 734_003_200})
    hd, sd, small = api.claim("media", count=3, worker="encoder-2")
    api.complete("media", small, {"path": "talk-480p.mp4"})
    api.fail("media", sd, "ffmpeg exited with status 1: unsupported pixel format")
    api.progress("media", hd, {"frames": 41_800, "of": 72_000, "stage": "encoding"})
    return {"workflow": hd["id"], "batch": reply["batch_id"]}


def read_chart(page) -> None:
    """Points at the throughput chart near its right end (the warm-up's traffic), so its read-out shows."""
    box = page.locator("#throughput-chart").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.97, box["y"] + box["height"] / 2)
    expect(page.locator("#throughput-chart .readout-text")).to_contain_text("completed")


def pick_two(page) -> None:
    """Ticks the first two jobs the search found, so the bulk bar shows."""
    rows = page.locator("#job-rows tr")
    expect(rows.nth(1)).to_be_visible()
    for n in range(2):
        rows.nth(n).locator('[data-f="pick"]').check()
    expect(page.locator("#bulk-count")).to_have_text("2 jobs selected")
    page.mouse.move(0, 0)


def open_error(page) -> None:
    """Opens the full text of the first error in the job's history."""
    page.locator("#history details summary").first.click()
    page.mouse.move(0, 0)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(dash_server, busy, make_page, scheme):
    OUT.mkdir(parents=True, exist_ok=True)
    page = make_page(key=True, color_scheme=scheme, viewport={"width": 1280, "height": 900})
    # The queue page is shot down to its recent events (its job table goes on for 50 rows), the triage view as
    # its job panel only; the others whole.
    shots = [
        ("overview", "/", None, None),
        ("queue", "/queues/emails", "#events-panel", read_chart),
        ("triage", "/queues/emails?status=failed&q=smtp", "#jobs-panel", pick_two),
        ("job", f"/queues/emails/jobs/{busy['job']}", None, open_error),
        ("workflow", f"/queues/media/jobs/{busy['workflow']}", None, None),
        ("batch", f"/queues/media/batches/{busy['batch']}", None, None),
    ]
    for name, path, only, prepare in shots:
        page.goto(dash_server.url + path)
        expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
        page.wait_for_timeout(1200)  # a live update or two, and web fonts are system fonts: nothing else to wait for
        if prepare:
            prepare(page)
            page.evaluate("window.scrollTo(0, 0)")  # a full-page shot draws the sticky top bar where it scrolled to
        target = OUT / f"{name}-{scheme}.png"
        if only is None:
            page.screenshot(path=str(target), full_page=True, animations="disabled")
        else:
            top, height = page.locator(only).evaluate(
                "(el) => { const r = el.getBoundingClientRect(); return [r.top + scrollY, r.height]; }"
            )
            clip = {"x": 0, "y": 0, "width": 1280, "height": top + height + 24}
            if name == "triage":
                clip = {"x": 0, "y": max(top - 16, 0), "width": 1280, "height": min(height + 32, 720)}
            page.screenshot(path=str(target), full_page=True, clip=clip, animations="disabled")
        assert target.stat().st_size > 20_000
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(15, 18, 23)") == (scheme == "dark")
