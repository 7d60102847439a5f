"""Structured logs: JSON lines off a terminal, request ids in the header and in every line of the request."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx

from starq.server.logging_setup import configure_logging, request_id


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_off_a_terminal_text_on_one(caplog):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        piped = io.StringIO()
        configure_logging("info", "auto", stream=piped)
        token = request_id.set("rid-1")
        try:
            logging.getLogger("starq.test").info("hello %s", "there", extra={"queue": "q1"})
        finally:
            request_id.reset(token)
        logging.getLogger("starq.test").debug("not at info level")
        (line,) = _json_lines(piped.getvalue())
        assert line["msg"] == "hello there" and line["level"] == "info" and line["logger"] == "starq.test"
        assert line["request_id"] == "rid-1" and line["queue"] == "q1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])

        tty = FakeTerminal()
        configure_logging("debug", "auto", stream=tty)
        logging.getLogger("starq.test").debug("plain")
        assert "DEBUG" in tty.getvalue() and "plain" in tty.getvalue() and not tty.getvalue().startswith("{")
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_request_ids_reach_the_header_and_the_log(server_factory):
    proc = server_factory("--access-log", env={"STARQ_LOG_FORMAT": "json"})
    given = httpx.get(proc.url + "/api/health", headers={"X-Request-ID": "lb-42.a"})
    assert given.headers["X-Request-ID"] == "lb-42.a"
    fresh = httpx.post(proc.url + "/api/v1/queues", json={"name": "x"})  # no key: refused by auth
    assert fresh.status_code == 401
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["X-Request-ID"])
    # (Control characters never reach the app: the HTTP layer answers 400, tests/test_http1.py.)
    hostile = httpx.get(proc.url + "/api/health", headers={"X-Request-ID": "a b" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-ID"])
    assert proc.stop() == 0
    lines = _json_lines(proc.output())
    access = {line["request_id"]: line for line in lines if line["logger"] == "starq.access"}
    assert access["lb-42.a"]["path"] == "/api/health" and access["lb-42.a"]["status"] == 200
    refused = access[fresh.headers["X-Request-ID"]]
    assert refused["status"] == 401 and refused["method"] == "POST" and refused["duration_ms"] >= 0
    assert any(line["msg"].startswith("stopped") for line in lines)


def test_log_level_and_access_log_flags(server_factory):
    proc = server_factory("--log-level", "warning", "--access-log", env={"STARQ_LOG_FORMAT": "json"})
    httpx.get(proc.url + "/api/health")
    assert proc.stop() == 0
    # At info level this run would log an access line and "stopped" (the next run shows it does).
    assert not [line for line in _json_lines(proc.output()) if line["level"] in ("debug", "info")]

    proc = server_factory(env={"STARQ_LOG_FORMAT": "json"})  # the access log is off by default
    httpx.get(proc.url + "/api/health")
    assert proc.stop() == 0
    lines = _json_lines(proc.output())
    assert any(line["level"] == "info" for line in lines)
    assert not [line for line in lines if line["logger"] == "starq.access"]
