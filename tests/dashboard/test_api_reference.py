"""The API reference (/api/docs: Swagger UI, served by Starq itself) in headless Chromium, against a real server with
a key of its own and read auth on: it lists every declared operation and schema, shows an operation's errors, and
"Try it" sends the key typed into its Authorize dialog; all under the page's CSP, talking to nothing but the
server, keeping the key nowhere."""

from __future__ import annotations

import uuid

import attrs
import httpx
import pytest
from playwright.sync_api import Page, Request, expect, sync_playwright

import starq.server.app  # noqa: F401 - importing it declares every operation, as the server does
from dashboard.helpers import CHROMIUM, CHROMIUM_ARGS
from serverproc import start_server
from starq.server.api.operations import OPERATIONS

KEY = "reference-test-key"
# The browser reaches the server by a name, not by a loopback address: Swagger UI leaves out some requests to
# other sites (its validator badge) when the page's address has "localhost" or "127.0.0.1" in it.
HOST = "starq.test"
# Collects what the page's Content-Security-Policy blocked: the event the browser fires for each violation.
CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(e.effectiveDirective + " " + e.blockedURI));
"""
REFUSED = "Failed to load resource: the server responded with a status of 401 (Unauthorized)"


@pytest.fixture(scope="module")
def keyed_server(redis_url):
    """Writes and reads both need ``KEY``; the reference page must still open without one."""
    server = start_server("--redis-url", redis_url, env={"STARQ_API_KEYS": KEY, "STARQ_READ_AUTH": "1"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    """Chromium resolving ``HOST`` to the loopback (in place of the dashboard tests' browser)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]
        )
        yield browser
        browser.close()


@attrs.define
class Reference:
    page: Page
    origin: str
    errors: list[str] = attrs.Factory(list)
    requests: list[Request] = attrs.Factory(list)


@pytest.fixture
def reference(keyed_server, browser):
    """The reference page, loaded and drawn, in a fresh context. Afterwards: no CSP violation, no console or script
    error, no request off the server's origin."""
    origin = keyed_server.url.replace("127.0.0.1", HOST)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(8000)
    page.add_init_script(CSP_WATCH)
    ref = Reference(page, origin)
    page.on("console", lambda m: ref.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: ref.errors.append(str(e)))

    def saw(request: Request) -> None:  # a plain function: Playwright cannot take list.append as a handler
        ref.requests.append(request)

    page.on("request", saw)
    page.goto(origin + "/api/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    yield ref
    # A screenshot of the whole page makes the browser draw all of it (a stylesheet's images load as they are
    # drawn), so whatever the policy blocks has been reported by then.
    page.screenshot(full_page=True)
    assert page.evaluate("window.__csp") == []
    assert ref.errors == []
    assert [r.url for r in ref.requests if not r.url.startswith(origin + "/")] == []
    context.close()


def test_every_operation_schema_and_error_is_shown(keyed_server, reference):
    page = reference.page
    shown = page.locator(".opblock-summary").evaluate_all(
        "els => els.map(e => e.querySelector('.opblock-summary-method').textContent + ' '"
        " + e.querySelector('.opblock-summary-path').dataset.path)"
    )
    assert sorted(shown) == sorted(f"{op.method} {op.path}" for op in OPERATIONS)

    document = httpx.get(keyed_server.url + "/api/openapi.json").json()
    schemas = page.locator('section.models article[data-json-schema-level="0"] .json-schema-2020-12__title')
    expect(schemas).to_have_count(len(document["components"]["schemas"]))
    assert set(schemas.all_inner_texts()) == set(document["components"]["schemas"])

    # An operation opened shows every response the document gives it, its errors included.
    submit = document["paths"]["/api/v1/queues/{name}/jobs"]["post"]
    assert {"401", "404", "413", "422", "503"} <= set(submit["responses"])
    block = page.locator(f"#operations-jobs-{submit['operationId']}")
    block.locator(".opblock-summary").click()
    codes = block.locator(".responses-table tr.response")
    expect(codes).to_have_count(len(submit["responses"]))
    assert set(codes.evaluate_all("rows => rows.map(r => r.dataset.code)")) == set(submit["responses"])


def run(page: Page, operation: str, body: str | None = None) -> None:
    """Opens an operation, presses "Try it out", types the body if any, and presses "Execute"."""
    block = page.locator(f"#operations-queues-{operation}")
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    if body is not None:
        block.locator("textarea.body-param__text").fill(body)
    block.locator("button.execute").click()


def answer(page: Page, operation: str):
    return page.locator(f"#operations-queues-{operation} .live-responses-table")


def test_try_it_sends_the_typed_key_and_keeps_it_nowhere(keyed_server, reference):
    page = reference.page
    page.locator("button.authorize").click()
    page.locator(".modal-ux input").fill(KEY)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()

    name = f"ref-{uuid.uuid4().hex[:8]}"
    run(page, "post_queues", f'{{"name": "{name}"}}')
    expect(answer(page, "post_queues").locator(".response-col_status")).to_have_text(["Code", "201"])
    expect(answer(page, "post_queues").locator(".microlight").first).to_contain_text(f'"name": "{name}"')
    # A read needs the key on this server: the page sends it there too.
    run(page, "get_queues")
    expect(answer(page, "get_queues").locator(".response-col_status")).to_have_text(["Code", "200"])
    expect(answer(page, "get_queues").locator(".microlight").first).to_contain_text(name)
    assert httpx.get(f"{keyed_server.url}/api/v1/queues/{name}", headers={"X-API-Key": KEY}).status_code == 200

    api = [r for r in reference.requests if "/api/v1/" in r.url]
    assert [(r.method, r.url, r.headers.get("x-api-key")) for r in api] == [
        ("POST", reference.origin + "/api/v1/queues", KEY),
        ("GET", reference.origin + "/api/v1/queues", KEY),
    ]
    assert [r.url for r in reference.requests if KEY in r.url] == [], "the key went into a URL"
    kept = page.evaluate("[JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.cookie]")
    assert kept == ["{}", "{}", ""]

    # Reloaded, the page has forgotten the key: the same read is refused.
    page.reload()
    run(page, "get_queues")
    expect(answer(page, "get_queues").locator(".response-col_status")).to_have_text(["Code", "401"])
    assert reference.errors == [REFUSED]  # the browser logs the refusal; the one error the page may show
    reference.errors.clear()
