"""/api/docs and its files over real HTTP from ``starq serve``: the page's CSP, content types, caching and gzip;
read auth leaves them open. (tests/dashboard/test_api_reference.py drives the page in a browser.)"""

from __future__ import annotations

import gzip
import hashlib
import re

import httpx
import pytest

from starq.server.api.openapi import accepts_gzip

PAGE_CSP = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'none'",
}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def page_files(page: str) -> list[str]:
    """The paths of the scripts and stylesheets the page loads."""
    return re.findall(r'<(?:script src|link rel="stylesheet" href)="([^"]+)"', page)


def test_the_page_has_a_strict_csp_and_no_inline_code(server):
    r = httpx.get(server.url + "/api/docs")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    policy = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    assert policy == PAGE_CSP
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    # Nothing inline for the policy to refuse: no script body, no style element or attribute, no handler.
    assert not re.search(r"<script(?![^>]*\bsrc=)|<script[^>]*>[^<]|<style|\sstyle=|\son\w+=", r.text)
    files = page_files(r.text)
    assert len(files) == 3 and all(f.startswith("/api/docs/") for f in files), files


def test_each_file_is_named_by_its_content_and_cached_for_good(server):
    for path in page_files(httpx.get(server.url + "/api/docs").text):
        plain = httpx.get(server.url + path, headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200, path
        assert "content-encoding" not in plain.headers
        stem, digest, suffix = path.rsplit("/", 1)[1].rsplit(".", 2)
        assert hashlib.sha256(plain.content).hexdigest()[:12] == digest, path
        assert plain.headers["content-type"] == TYPES["." + suffix]
        assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert plain.headers["vary"] == "accept-encoding"

        # httpx would unpack it: read the bytes as sent.
        with httpx.stream("GET", server.url + path, headers={"Accept-Encoding": "gzip"}) as packed:
            raw = b"".join(packed.iter_raw())
        assert packed.headers["content-encoding"] == "gzip"
        assert int(packed.headers["content-length"]) == len(raw) < len(plain.content)
        assert gzip.decompress(raw) == plain.content

        head = httpx.head(server.url + path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == plain.headers["content-type"]


def test_unknown_and_outdated_names_are_not_found(server):
    for name in ("swagger-ui-bundle.js", "swagger-ui-bundle.000000000000.js", "LICENSE", "..%2Fopenapi.py", ".x"):
        r = httpx.get(f"{server.url}/api/docs/{name}")
        assert r.status_code == 404, name
        assert r.json()["error"] == "not_found"


async def test_read_auth_leaves_the_page_and_its_files_open(make_api):
    api = await make_api(api_keys=("a-key",), read_auth=True)
    assert (await api.client.get("/api/v1/queues")).status_code == 401
    page = await api.client.get("/api/docs")
    assert page.status_code == 200
    for path in page_files((await page.get_data()).decode()):
        assert (await api.client.get(path)).status_code == 200, path


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        (b"gzip", True),
        (b"GZip, deflate, br", True),
        (b"br;q=1.0, gzip;q=0.5", True),
        (b"gzip;q=0", False),
        (b"gzip; q=0.000", False),
        (b"identity", False),
        (b"x-gzip", False),
        (None, False),
    ],
)
def test_accept_encoding(header, gzip_ok):
    headers = [(b"host", b"x")] + ([(b"Accept-Encoding", header)] if header is not None else [])
    assert accepts_gzip(headers) is gzip_ok
