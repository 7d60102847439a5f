"""The dashboard's routes: four server-rendered pages, their live event stream, a queue's recent job events, a key
check and the favicon.

Pages are rendered with their first snapshot embedded as inert JSON (``<script type="application/json">``,
which a strict CSP allows), so they paint complete on load; ``static/dashboard.js`` then keeps them current
from the live stream. With ``STARQ_READ_AUTH=1`` a page is rendered without any data, and everything arrives
through the stream once the browser presents a key in the ``X-API-Key`` header (never in a URL or cookie).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import orjson
from markupsafe import Markup
from quart import Blueprint, Response, current_app, render_template, request, send_from_directory

from starq.server.api.operations import AppState, batch_id, job_id, queue_name
from starq.server.api.service import key_is_valid
from starq.server.api.shapes import MAX_BULK_IDS
from starq.worker_kit.errors import NotFound, QueueNotFound, StarqError, Unauthorized, ValidationFailed
from starq.worker_kit.protocol import HISTORY_EVENT_STATUS, QUEUE_SETTINGS

from . import snapshots
from .event_log import RECENT, event_log
from .live import StreamCounter, snapshot_events

# What every page is rendered with besides its own context: the declared facts its script and forms use (the
# queue settings by name give the settings forms their limits and defaults; the job page's history shows the
# status an event left its job in).
PAGE_FACTS: dict[str, Any] = {
    "statuses": snapshots.JOB_STATUSES,
    "finished": snapshots.FINISHED,
    "card_statuses": snapshots.CARD_STATUSES,
    "setting": {s.name: s for s in QUEUE_SETTINGS},
    "history_status": HISTORY_EVENT_STATUS,
}
# The pages about one thing of a queue, by view: the snapshot each is built from, and the check of the id that
# ``?<view>=`` names.
ITEM_VIEWS = {"job": (snapshots.job_page, job_id), "batch": (snapshots.batch_page, batch_id)}
COUNTER_KEY = "starq.dashboard.streams"
STATIC = Path(__file__).parent / "static"


def _state() -> AppState:
    return current_app.extensions["starq"]


def _counter() -> StreamCounter:
    return current_app.extensions.setdefault(COUNTER_KEY, StreamCounter())


def _embedded_json(data: dict[str, Any]) -> Markup:
    """JSON that is safe inside a ``<script type="application/json">`` element: no ``</script>`` can end it."""
    text = orjson.dumps(data).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _status_arg(raw: str | None) -> str:
    status = raw or ""
    if status and status not in snapshots.JOB_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(snapshots.JOB_STATUSES)}")
    return status


def _search_arg(raw: str | None) -> str:
    text = (raw or "").strip()
    if len(text) > snapshots.SEARCH_MAX_LENGTH:
        raise ValidationFailed(f"q must be at most {snapshots.SEARCH_MAX_LENGTH} characters long")
    return text


def _range_arg(raw: str | None) -> str:
    chart_range = raw or next(iter(snapshots.CHART_RANGES))
    if chart_range not in snapshots.CHART_RANGES:
        raise ValidationFailed(f"range must be one of {', '.join(snapshots.CHART_RANGES)}")
    return chart_range


def _check_read_key() -> None:
    settings = _state().settings
    if settings.read_auth and not key_is_valid(request.headers.get("X-API-Key"), settings.accepted_keys):
        raise Unauthorized("a valid X-API-Key header is required")


async def _page(template: str, http_status: int = 200, **context: Any) -> Response:
    settings = _state().settings
    html = await render_template(
        template, read_auth=settings.read_auth, dev_mode=settings.dev_mode, **PAGE_FACTS, **context
    )
    response = Response(html, status=http_status, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


async def _first_snapshot(build) -> Markup | None:
    """The snapshot a page is rendered with: none under read auth (the stream delivers it once the browser
    shows a key), and none while the store is unreachable (the page then says so from its stream)."""
    if _state().settings.read_auth:
        return None
    try:
        return _embedded_json(await build())
    except NotFound:
        raise
    except StarqError:
        return None


async def _not_found(what: str) -> Response:
    return await _page("missing.html", 404, view="missing", what=what, initial=None)


def _stream(events) -> Response:
    response = Response(events, content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not hold events back
    response.timeout = None  # the stream ends on disconnect or shutdown, not on RESPONSE_TIMEOUT
    return response


def create_blueprint() -> Blueprint:
    """The dashboard, to register on the app at ``/``."""
    bp = Blueprint(
        "dashboard", __name__, static_folder="static", static_url_path="/dashboard/static", template_folder="templates"
    )

    @bp.get("/")
    async def overview() -> Response:
        initial = await _first_snapshot(partial(snapshots.overview, _state().engine))
        return await _page("overview.html", view="overview", initial=initial)

    @bp.get("/queues/<name>")
    async def queue(name: str) -> Response:
        status = request.args.get("status", "")
        if status not in snapshots.JOB_STATUSES:
            status = ""  # an unknown filter in a hand-edited URL shows every job
        # Likewise a search too long for the API, and an unknown chart range, are dropped.
        text = request.args.get("q", "").strip()
        if len(text) > snapshots.SEARCH_MAX_LENGTH:
            text = ""
        chart_range = request.args.get("range", "")
        if chart_range not in snapshots.CHART_RANGES:
            chart_range = next(iter(snapshots.CHART_RANGES))
        try:
            initial = await _first_snapshot(
                partial(snapshots.queue_page, _state().engine, queue_name(name), status, text, chart_range)
            )
        except QueueNotFound:
            return await _not_found(f"queue “{name}”")
        return await _page(
            "queue.html",
            view="queue",
            queue=name,
            status=status,
            search=text,
            search_max=snapshots.SEARCH_MAX_LENGTH,
            search_budget=snapshots.SEARCH_BUDGET,
            bulk_max=MAX_BULK_IDS,
            chart_range=chart_range,
            chart_ranges=snapshots.CHART_RANGES,
            initial=initial,
            recent_events=RECENT,
        )

    @bp.get("/queues/<name>/jobs/<job>")
    async def job(name: str, job: str) -> Response:
        try:
            initial = await _first_snapshot(partial(snapshots.job_page, _state().engine, queue_name(name), job_id(job)))
        except NotFound:
            return await _not_found(f"job {job} of queue “{name}”")
        return await _page("job.html", view="job", queue=name, job=job, initial=initial)

    @bp.get("/queues/<name>/batches/<batch>")
    async def batch(name: str, batch: str) -> Response:
        try:
            initial = await _first_snapshot(
                partial(snapshots.batch_page, _state().engine, queue_name(name), batch_id(batch))
            )
        except NotFound:
            return await _not_found(f"batch {batch} of queue “{name}”")
        return await _page("batch.html", view="batch", queue=name, batch=batch, initial=initial)

    @bp.get("/dashboard/events")
    async def events() -> Response:
        """The live stream of one page: ``?view=overview``, ``?view=queue&queue=Q[&status=S][&q=TEXT][&range=R]``,
        ``?view=job&queue=Q&job=ID`` or ``?view=batch&queue=Q&batch=ID``."""
        _check_read_key()
        engine = _state().engine
        view = request.args.get("view", "overview")
        if view == "overview":
            build = partial(snapshots.overview, engine)
        elif view == "queue":
            build = partial(
                snapshots.queue_page,
                engine,
                queue_name(request.args.get("queue", "")),
                _status_arg(request.args.get("status")),
                _search_arg(request.args.get("q")),
                _range_arg(request.args.get("range")),
            )
        elif view in ITEM_VIEWS:
            page, item_id = ITEM_VIEWS[view]
            build = partial(
                page, engine, queue_name(request.args.get("queue", "")), item_id(request.args.get(view, ""))
            )
        else:
            raise ValidationFailed(f"view must be one of {', '.join(snapshots.VIEWS)}")
        hub = _state().hub
        return _stream(snapshot_events(build, closing=lambda: hub.closed, counter=_counter()))

    @bp.get("/dashboard/job-events")
    async def job_events() -> Response:
        """The queue page's recent events: ``?queue=Q``, from its last few events on, or after the event named
        by ``Last-Event-ID`` when the browser reconnects."""
        _check_read_key()
        queue = queue_name(request.args.get("queue", ""))
        resume = request.headers.get("Last-Event-ID", "").strip()
        if resume and not resume.isdigit():
            raise ValidationFailed("Last-Event-ID must be the id of an event (a number)")
        state = _state()
        return _stream(
            event_log(state.engine, state.hub.events, queue, int(resume) if resume else None, counter=_counter())
        )

    @bp.get("/dashboard/streams")
    async def streams() -> Response:
        """This process's live streams: how many are open and what they have cost so far."""
        _check_read_key()
        c = _counter()
        return Response(
            orjson.dumps(
                {"open": c.open, "opened": c.opened, "events": c.events, "snapshots_built": c.snapshots_built}
            ),
            content_type="application/json",
        )

    @bp.get("/dashboard/key")
    async def check_key() -> Response:
        """Whether the ``X-API-Key`` header holds a valid key, so the page can tell a typo at once. Always 200
        (``{"valid": bool}``): a wrong key is an answer here, not an error."""
        valid = key_is_valid(request.headers.get("X-API-Key"), _state().settings.accepted_keys)
        return Response(
            orjson.dumps({"valid": valid}), content_type="application/json", headers={"Cache-Control": "no-store"}
        )

    @bp.get("/favicon.ico")
    async def favicon() -> Response:
        return await send_from_directory(STATIC, "favicon.svg", mimetype="image/svg+xml")

    return bp
