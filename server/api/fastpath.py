"""A direct ASGI path for the five job routes every worker calls in a loop: submit, claim, complete, fail, ack.

Why it exists: Quart spends more CPU on each of these requests than the handler does (a request object with
werkzeug ``Headers``, URL routing, context pushes, ``g``, four ``before_request`` and three ``after_request``
hooks, a ``Response`` object and its conversion back to ASGI). Measured with the app driven in-process over
ASGI (no HTTP server, one request at a time, CPU time per request, the engine's own Redis round trip
included): submit 1,100 µs through Quart, 620 µs here; claim or complete 800 µs through Quart, 500 µs here.
A no-op route costs 190 µs in a bare QuartTrio app before any of our hooks run.

What it does not have is a second copy of any rule. Everything that decides an answer is the code the Quart
routes use: ``http.check_head_size``, ``http.check_api_key``, ``http.parse_body`` (size limit, JSON, schema),
``http.queue_name``/``http.job_id``, the handlers' cores in ``jobs.HOT_ROUTES`` (one engine call each),
``http.error_body``/``http.http_exception_error``/``http.internal_error`` for errors,
``http.json_headers`` for the security headers, ``logging_setup`` for request ids and access lines, and
``Metrics.observe_request``. Only the plumbing Quart provided is done here: matching the five paths, reading
the body (with the same byte limit and ``BODY_TIMEOUT``), cancelling the handler when the client hangs up,
and sending the answer. Any other request, or one this path does not recognise exactly, goes to Quart.
``tests/api/test_fastpath.py`` sends every kind of request both ways and compares status, headers and body.
"""

from __future__ import annotations

import time
from typing import Any

import trio
from werkzeug.exceptions import RequestTimeout

from .. import logging_setup
from ..engine.errors import StarqError, TooLarge
from . import http
from .jobs import HOT_ROUTES, HotRoute

_PREFIX = "/api/v1/queues/"


def match(method: str, path: str) -> tuple[HotRoute, str, str | None] | None:
    """The hot route, queue name and job id of a request, or None for anything else (which Quart answers).

    Matches exactly what werkzeug would route to the same handlers: every ``{name}``/``{job}`` part is a
    non-empty segment without ``/``, and the literal segments win over a job id (``…/jobs/claim`` is the
    claim route, as in werkzeug, where static parts rank first).
    """
    if not path.startswith(_PREFIX):
        return None
    parts = path[len(_PREFIX) :].split("/")
    n = len(parts)
    if n < 2 or parts[1] != "jobs" or not parts[0]:
        return None
    if method == "POST":
        if n == 2:
            return HOT_ROUTES["submit"], parts[0], None
        if n == 3 and parts[2] in ("claim", "ack"):
            return HOT_ROUTES[parts[2]], parts[0], None
    elif method == "PUT" and n == 4 and parts[2] and parts[3] in ("complete", "fail"):
        return HOT_ROUTES[parts[3]], parts[0], parts[2]
    return None


class _Disconnected(Exception):
    """The client hung up before its request body arrived: nothing is answered."""


class HotPath:
    """ASGI middleware answering the hot job routes itself and passing everything else to ``app``.

    Args:
        app: the Quart ASGI app, where every other request goes (public: tests compare the two paths).
        state: the app's engine, broker and settings (the same object the Quart handlers use).
        metrics: the app's ``Metrics``.
        access: whether to write one access-log line per request, as ``install_request_ids`` does.
        response_timeout: Quart's ``RESPONSE_TIMEOUT``: how long sending an answer may take.
    """

    def __init__(self, app: Any, state: http.AppState, metrics: Any, *, access: bool, response_timeout: float) -> None:
        self.app = app
        self._state = state
        self._metrics = metrics
        self._access = access
        self._response_timeout = response_timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            found = match(scope["method"], scope["path"])
            if found is not None:
                await self._serve(found, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, found: tuple[HotRoute, str, str | None], scope: dict, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        hot, name, job = found
        method, path = scope["method"], scope["path"]
        given_id = api_key = length = None
        # One pass over the headers for the three this path reads; like werkzeug's Headers.get, the first of a
        # repeated header counts.
        for key, value in scope["headers"]:
            key = key.lower()
            if key == b"x-request-id":
                if given_id is None:
                    given_id = value.decode("latin1")
            elif key == b"x-api-key":
                if api_key is None:
                    api_key = value.decode("latin1")
            elif key == b"content-length" and length is None:
                length = value
        rid = logging_setup.request_id_for(given_id)
        token = logging_setup.request_id.set(rid)
        try:
            async with trio.open_nursery() as nursery:
                try:
                    data, status = await self._answer(hot, name, job, scope, receive, nursery, api_key, length)
                except _Disconnected:
                    return
                except StarqError as exc:
                    data, status = http.error_body(exc), exc.status
                except RequestTimeout as exc:
                    error = http.http_exception_error(exc, method, path)
                    data, status = http.error_body(error), error.status
                except Exception:
                    error = http.internal_error(method, path)
                    data, status = http.error_body(error), error.status
                headers = http.json_headers(len(data), rid)
                self._metrics.observe_request(method, hot.rule, status, time.perf_counter() - started)
                if self._access:
                    logging_setup.log_access(method, path, status, started, (scope.get("client") or ("<local>",))[0])
                with trio.move_on_after(self._response_timeout):
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": data})
                nursery.cancel_scope.cancel()  # the disconnect watcher
        finally:
            logging_setup.request_id.reset(token)

    async def _answer(
        self,
        hot: HotRoute,
        name: str,
        job: str | None,
        scope: dict,
        receive: Any,
        nursery: trio.Nursery,
        api_key: str | None,
        length: bytes | None,
    ) -> tuple[bytes, int]:
        settings = self._state.settings
        # The order of Quart's hooks and handlers: head size, key, path parameters, body.
        http.check_head_size(scope, settings.max_header_bytes)
        http.check_api_key(scope["method"], scope["path"], api_key, settings)
        name = http.queue_name(name)
        if job is not None:
            job = http.job_id(job)
        raw = await self._read_body(receive, settings, length)
        body = http.parse_body(raw, hot.schema, settings.max_body_bytes)
        # As under Quart, a client that hangs up while the handler runs (a long-poll above all) cancels it.
        nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
        result, status = await hot.run(self._state, scope, name, job, body)
        return http.render_json(result), status

    async def _read_body(self, receive: Any, settings: Any, length: bytes | None) -> bytes:
        limit = settings.max_body_bytes
        if length is not None:
            try:
                declared: int | None = int(length)
            except ValueError:
                declared = None
            if declared is not None and declared > limit:
                raise TooLarge(http.body_too_large(limit))
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(settings.body_timeout) as timer:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise _Disconnected()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(http.body_too_large(limit))
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if timer.cancelled_caught:
            raise RequestTimeout()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _cancel_on_disconnect(receive: Any, cancel_scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel_scope.cancel()
