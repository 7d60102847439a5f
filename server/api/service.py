"""The API's ASGI path: every ``/api/*`` request, and ``/metrics``, answered from the declarations of
``operations.py``; every other request (the dashboard) goes on to the Quart app.

What every operation needs is written once, here, as plain functions: request ids, routing (404/405), auth,
the body's size and time limits, path-parameter, body and query validation, the mapping of errors to JSON,
security headers, metrics and the access log, cancelling a waiting handler when its client hangs up, and the
delivery guard of claims (below). Answering without Quart's request machinery (a request object with werkzeug
headers, URL rules, context pushes, hooks, a Response and its conversion back to ASGI) roughly halves the CPU
of a request; see benchmarks/README.md.

The delivery guard: a claim records the jobs it obtained in the request's ``Ledger``. Just before the body is
written, the connection is asked whether the client has already closed or reset it (``client_gone()``, which
also sees a close that has arrived but not been read); if so nothing is written. Otherwise the body is
written, and the jobs count as delivered only if ``send`` reports the bytes handed to the kernel and the
client did not then reset the connection unread (``reached_client``). However else the request ends, the jobs
go back to their queue at once (``Ledger.release_undelivered``), never waiting for ``claim_timeout``. The check
comes before the write, not after: a client that reads its answer and closes at once (curl) keeps its jobs.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager, nullcontext
from typing import Any

import orjson
import trio

from starq.worker_kit.errors import (
    BadRequest,
    MethodNotAllowed,
    RequestTimeout,
    StarqError,
    TooLarge,
    Unauthorized,
    ValidationFailed,
)
from starq.worker_kit.protocol import MAX_JSON_DEPTH

from .. import logging_setup
from ..http1 import EXTENSION
from ..settings import OPEN_PATHS, Settings
from .operations import OPERATIONS, PARAMS, PARKS, Answer, AppState, Operation, Reply, Request, Router, Stream
from .schema import Schema

log = logging.getLogger("starq.http")

# Paths answered here; everything else belongs to the Quart app.
API_PREFIX = "/api/"
METRICS_PATH = "/metrics"
JSON = "application/json"
# Headers every response carries: no MIME sniffing, no framing, no referrer. JSON needs no sources at all (its
# CSP); a page that needs more sets its own, and any other HTML gets HTML_CSP (the dashboard's hook adds these
# to Quart's responses).
SECURITY_HEADERS = (("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"),
                    ("referrer-policy", "no-referrer"))  # fmt: skip
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_SECURITY = tuple((name.encode(), value.encode()) for name, value in SECURITY_HEADERS)
_JSON_HEADERS = ((b"content-type", JSON.encode()), *_SECURITY, (b"content-security-policy", API_CSP.encode()))
# How long after writing a claim's jobs a client still counts as possibly hanging up on them (a reset in this
# time sends them back). The wait ends at once when the client sends its next request or closes; only the
# request's task waits, never the client.
CONFIRM_SECONDS = 0.25


class _Disconnected(Exception):
    """The client hung up before its request was answered: there is nothing to send."""


# -- the plain functions every request goes through -----------------------------------------------------------


def key_is_valid(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Constant-time check against every configured key (no early exit, so timing tells nothing)."""
    if not presented:
        return False
    given = presented.encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode())
    return ok


def check_key(auth: str, path: str, presented: str | None, settings: Settings) -> None:
    """Raises Unauthorized unless the request may go on: writes always need a key, reads only with read auth
    (and never on the open paths)."""
    needed = auth == "write" or (auth == "read" and settings.read_auth and path not in OPEN_PATHS)
    if needed and not key_is_valid(presented, settings.accepted_keys):
        raise Unauthorized("a valid key is required: send it as X-API-Key (or Authorization: Bearer)")


def error_body(error: StarqError) -> bytes:
    return orjson.dumps({"detail": error.detail, "error": error.code})


def internal_error(method: str, path: str) -> StarqError:
    """Logs the exception being handled and returns the 500 answer for it (which says nothing about it)."""
    log.exception("unhandled error on %s %s", method, path)
    return StarqError("internal server error", code="internal", status=500)


def body_too_large(limit: int) -> TooLarge:
    return TooLarge(f"the request body is larger than the {limit}-byte limit")


def parse_body(raw: bytes, schema: Schema, limit: int) -> dict[str, Any]:
    """A request body (all of it) parsed as JSON and validated against ``schema``; an empty body is ``{}``."""
    if len(raw) > limit:
        raise body_too_large(limit)
    if not raw.strip():
        return schema.parse({})
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own limit (1,024 levels), far past ours
            raise too_deep() from exc
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    # Fewer brackets than the limit cannot nest deeper than it: most bodies skip the check.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and deeper_than(raw, MAX_JSON_DEPTH):
        raise too_deep()
    return schema.parse(data)


def too_deep() -> ValidationFailed:
    return ValidationFailed(f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep")


# A JSON string, escapes included (only needed when the text has an escaped quote).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Every byte but brackets goes, and both kinds of brackets become one (valid JSON nests them properly).
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"[{]}", b"(())")


def deeper_than(raw: bytes, limit: int) -> bool:
    """Whether valid JSON text nests arrays and objects more than ``limit`` levels deep.

    Done on the text with a few C-speed passes, not by walking the decoded value (the walk cost 300-450 µs per
    request for a batch of 100 jobs or an ack of 50, the hottest batch routes): with its strings taken out,
    the text's brackets nest as its values do, and each ``replace`` of ``()`` removes exactly the innermost
    level (it does not look again at the pairs its own removals make)."""
    if b'\\"' in raw:  # an escaped quote: strings are found one by one
        outside = _JSON_STRING.sub(b"", raw)
    else:  # no quote is escaped: the text between the 1st and 2nd quote, the 3rd and 4th, … is the strings'
        outside = b"".join(raw.split(b'"')[::2])
    nesting = outside.translate(_ONE_KIND, _NOT_A_BRACKET)
    for _ in range(limit):
        if not nesting:
            return False
        nesting = nesting.replace(b"()", b"")
    return bool(nesting)


def _headers(scope: dict[str, Any]) -> tuple[str | None, str | None, bytes | None]:
    """The request id, the key (X-API-Key, else a Bearer token) and the declared body length, in one pass
    over the headers (the first of a repeated header counts)."""
    given_id = api_key = bearer = length = None
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"x-request-id":
            given_id = given_id or value.decode("latin-1")
        elif name == b"x-api-key":
            api_key = api_key or value.decode("latin-1")
        elif name == b"authorization" and bearer is None and value[:7].lower() == b"bearer ":
            bearer = value[7:].decode("latin-1").strip()
        elif name == b"content-length" and length is None:
            length = value
    return given_id, api_key or bearer, length


# -- the ASGI path ------------------------------------------------------------------------------------------


class ApiService:
    """ASGI middleware answering the API's operations and passing every other request to ``fallback``.

    Args:
        state: what the handlers work with.
        fallback: the ASGI app of everything else (the Quart app, with the dashboard).
    """

    def __init__(self, state: AppState, fallback: Any, operations: list[Operation] = OPERATIONS) -> None:
        self.state = state
        self.fallback = fallback
        self.router = Router(operations)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path.startswith(API_PREFIX) or path == METRICS_PATH):
            await self._serve(scope, receive, send)
        else:
            await self.fallback(scope, receive, send)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        given_id, key, length = _headers(scope)
        rid = logging_setup.request_id_for(given_id)
        token = logging_setup.request_id.set(rid)
        label, status = "unmatched", 500
        request: Request | None = None
        try:
            try:
                op, params = self.router.match(method, path)
                label = op.path
                check_key(op.auth, path, key, self.state.settings)
                request = Request(method, path, self._params(params), {}, {}, scope)
                if op.body is not None:
                    raw = await self._read_body(receive, length, scope)
                    request.body = parse_body(raw, op.body, self._limit)
                if op.query is not None:
                    request.query = op.query.parse_query(scope.get("query_string", b""))
                if op.waits == PARKS:
                    status = await self._serve_parking(op, request, receive, send, rid)
                elif op.waits is True or (op.waits and request.query.get(op.waits)):
                    status = await self._serve_waiting(op, request, receive, send, rid)
                else:
                    status = await self._send(await self._handle(op, request), send, request, rid)
            except _Disconnected:
                status = 499  # nginx's word for it: the client closed the request before any answer
            except StarqError as exc:
                if method == "OPTIONS" and isinstance(exc, MethodNotAllowed) and exc.allowed:
                    allow = (("allow", ", ".join(exc.allowed)),)
                    status = await self._send(Reply(b"", "text/plain", 200, allow), send, None, rid)
                else:
                    status = await self._send_error(exc, send, rid)
            except Exception:
                status = await self._send_error(internal_error(method, path), send, rid)
        finally:
            if request is not None and request.ledger is not None:
                await _settle_delivery(request, self.state)
            self.state.metrics.observe_request(method, label, status, time.perf_counter() - started)
            if self.state.settings.access_log:
                logging_setup.log_access(method, path, status, started, (scope.get("client") or ("<local>",))[0])
            logging_setup.request_id.reset(token)

    @property
    def _limit(self) -> int:
        return self.state.settings.max_body_bytes

    @staticmethod
    def _params(raw: dict[str, str]) -> dict[str, str]:
        return {name: PARAMS[name](value) for name, value in raw.items()}

    async def _read_body(self, receive: Any, length: bytes | None, scope: dict[str, Any]) -> bytes:
        limit = self._limit
        if length is not None and length.isdigit() and int(length) > limit:
            raise body_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        # A body the connection has already read whole (the usual small JSON body) comes with one receive that
        # does not wait: no timer for it (a cancel scope with a deadline, ~6 µs of every request's CPU).
        transport = scope.get("extensions", {}).get(EXTENSION)
        arrived = transport is not None and transport["body_arrived"]()
        bound = nullcontext() if arrived else trio.move_on_after(self.state.settings.body_timeout)
        with bound as timer:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise _Disconnected()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise body_too_large(limit)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if timer is not None and timer.cancelled_caught:
            raise RequestTimeout(f"the request body did not arrive within {self.state.settings.body_timeout:g} s")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _handle(self, op: Operation, request: Request) -> Answer:
        """The handler's answer, or the error answer for what it raised."""
        try:
            return await op.handler(self.state, request)
        except StarqError as exc:
            return _error_reply(exc)
        except Exception:
            return _error_reply(internal_error(request.method, request.path))

    async def _serve_waiting(self, op: Operation, request: Request, receive: Any, send: Any, rid: str) -> int:
        """Runs a handler that may wait (and sends its answer) while watching for the client to hang up, which
        cancels it: a long-poll's client that left must not keep its place in line."""
        status: int | None = None
        async with _HangUpWatch(receive).waiting():
            status = await self._send(await self._handle(op, request), send, request, rid)
        if status is None:
            raise _Disconnected()
        return status

    async def _serve_parking(self, op: Operation, request: Request, receive: Any, send: Any, rid: str) -> int:
        """Runs a handler that waits only inside ``request.waiting()`` (a claim that parks): the watch for its
        client hanging up, a task and a nursery, exists only there. A claim answered from its first try, the
        usual case under load, pays for none of it (a nursery, a task, a failed read and two epoll changes: ~15 %
        of the CPU of a claim 1 + complete cycle); the delivery guard still sees a client that left meanwhile
        (``client_gone()``) before anything is written."""
        watch = _HangUpWatch(receive)
        request.waiting = watch.waiting
        status = await self._send(await self._handle(op, request), send, request, rid)
        if watch.hung_up:
            raise _Disconnected()
        return status

    async def _send(self, answer: Answer, send: Any, request: Request | None, rid: str) -> int:
        """Sends an answer; returns its status."""
        if isinstance(answer, Stream):
            await self._send_stream(answer, send, rid)
            return 200
        if isinstance(answer, Reply):
            body, status = answer.body, answer.status
            headers = [(b"content-type", answer.content_type.encode()), (b"content-length", b"%d" % len(body)),
                       *_SECURITY, *((k.encode(), v.encode()) for k, v in answer.headers)]  # fmt: skip
            if not any(k.lower() == "content-security-policy" for k, _ in answer.headers):
                headers.append((b"content-security-policy", API_CSP.encode()))
        else:
            data, status = answer
            body = orjson.dumps(data)
            headers = [*_JSON_HEADERS, (b"content-length", b"%d" % len(body))]
        headers.append((b"x-request-id", rid.encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        transport = _transport(request) if request is not None else None
        if request is None or request.ledger is None or not request.ledger.jobs:
            await self._write(send, body, transport)
            return status
        ledger = request.ledger
        if transport is not None and transport["client_gone"]():
            return status  # nothing written: the jobs go back to the queue when the request ends
        ledger.written = await self._write(send, body, transport)
        if transport is None:
            ledger.delivered()  # no transport to ask (an app driven in-process): sent counts as delivered
        return status

    async def _write(self, send: Any, body: bytes, transport: Any) -> bool:
        # Bounded: a client that stops reading must not hold the request forever. The connection bounds only a
        # write that waits; driven in-process, without it, the whole send is.
        message = {"type": "http.response.body", "body": body}
        if transport is not None:
            return bool(await transport["send_within"](message, self.state.settings.body_timeout))
        with trio.move_on_after(self.state.settings.body_timeout):
            return bool(await send(message))
        return False

    async def _send_stream(self, answer: Stream, send: Any, rid: str) -> None:
        headers = [(b"content-type", answer.content_type.encode()), *_SECURITY,
                   (b"content-security-policy", API_CSP.encode()), (b"cache-control", b"no-store"),
                   (b"x-request-id", rid.encode("latin-1")),
                   *((k.encode(), v.encode()) for k, v in answer.headers)]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # Closed here, not whenever the garbage collector gets to it: ending it lets go of what it holds.
        async with aclosing(answer.chunks) as chunks:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _send_error(self, error: StarqError, send: Any, rid: str) -> int:
        return await self._send(_error_reply(error), send, None, rid)


def _error_reply(error: StarqError) -> Reply:
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(error, MethodNotAllowed) and error.allowed:
        headers = (("allow", ", ".join(error.allowed)),)  # RFC 9110: a 405 says which methods are allowed
    return Reply(error_body(error), JSON, error.status, headers)


def _transport(request: Request) -> Any:
    """What the connection offers the API path (``http1.EXTENSION``); None for an app driven in-process."""
    return request.scope.get("extensions", {}).get(EXTENSION)


async def _settle_delivery(request: Request, state: AppState) -> None:
    """Once the request is over: jobs written to a client that then read on, sent its next request or closed
    cleanly are delivered; any others go back to their queue at once.

    It runs only now, when nothing else reads the socket (a waiting request's disconnect watch has ended): a
    client that resets the connection now closed without reading the jobs (it timed out just as they came).
    """
    ledger = request.ledger
    assert ledger is not None
    transport = _transport(request)
    # reached_client's wait is shielded: it ends within CONFIRM_SECONDS even while the request is cancelled.
    if ledger.jobs and ledger.written and transport is not None and await transport["reached_client"](CONFIRM_SECONDS):
        ledger.delivered()
    await ledger.release_undelivered(state.engine)


class _HangUpWatch:
    """``waiting()``: a context whose body the client hanging up cancels (``hung_up`` then says so)."""

    def __init__(self, receive: Callable[[], Any]) -> None:
        self._receive = receive
        self.hung_up = False

    @asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, nursery.cancel_scope)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    async def _watch(self, cancel_scope: trio.CancelScope) -> None:
        await _cancel_on_disconnect(self._receive, cancel_scope)
        self.hung_up = True


async def _cancel_on_disconnect(receive: Callable[[], Any], cancel_scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel_scope.cancel()
