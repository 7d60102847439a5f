"""The application: the API's ASGI path (``api/service.py``) in front of a Quart-Trio app.

The API's operations are answered by ``ApiService`` from their declarations, without Quart's request machinery.
Quart hosts what it does well and what is not on a worker's hot path: the ASGI lifespan, the dashboard
blueprint (its server-rendered pages, static files and live event streams) and their errors. Its hooks below
give those requests what API requests get, with the same functions: a request id, metrics, security headers,
and JSON errors.
"""

from __future__ import annotations

import time

from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from starq.dashboard import create_blueprint
from starq.worker_kit.errors import MethodNotAllowed, NotFound, StarqError, TooLarge

from . import logging_setup
from .api import jobs, meta, queues, schedules, workflows  # noqa: F401 - importing them declares their operations
from .api.operations import AppState
from .api.service import API_CSP, HTML_CSP, JSON, SECURITY_HEADERS, ApiService, error_body, internal_error
from .engine.engine import Engine
from .hub import Hub
from .metrics import Metrics
from .settings import Settings


def create_app(engine: Engine, hub: Hub, settings: Settings) -> QuartTrio:
    """An app serving ``engine``'s queues. The caller owns the engine and runs ``hub``.

    The metrics are the engine's observer when it has them (as ``starq serve`` makes it), else a fresh set.
    """
    metrics = engine.observer if isinstance(engine.observer, Metrics) else Metrics()
    state = AppState(engine=engine, hub=hub, settings=settings, metrics=metrics)
    app = QuartTrio(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, BODY_TIMEOUT=settings.body_timeout)
    app.extensions["starq"] = state
    _install_page_hooks(app, state)
    app.register_blueprint(create_blueprint())
    # Wrapping asgi_app is Quart's own way to put middleware in front (its stubs type it as a method).
    app.asgi_app = ApiService(state, app.asgi_app)  # type: ignore[method-assign,assignment]
    return app


def _install_page_hooks(app: QuartTrio, state: AppState) -> None:
    @app.before_request
    async def start() -> None:
        g.started = time.perf_counter()
        g.request_id = logging_setup.request_id_for(request.headers.get(logging_setup.REQUEST_ID_HEADER))
        logging_setup.request_id.set(g.request_id)

    @app.after_request
    async def finish(response: Response) -> Response:
        headers = response.headers
        for name, value in SECURITY_HEADERS:
            headers.setdefault(name, value)
        if "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = HTML_CSP if response.mimetype == "text/html" else API_CSP
        started = g.get("started", time.perf_counter())
        if g.get("request_id"):
            headers[logging_setup.REQUEST_ID_HEADER] = g.request_id
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        state.metrics.observe_request(request.method, rule, response.status_code, time.perf_counter() - started)
        if state.settings.access_log:
            logging_setup.log_access(request.method, request.path, response.status_code, started,
                                     request.remote_addr or "")  # fmt: skip
        return response

    @app.errorhandler(StarqError)
    async def starq_error(error: StarqError) -> Response:
        return Response(error_body(error), status=error.status, content_type=JSON)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        mapped = {404: NotFound(f"no route for {request.path}"), 413: TooLarge("the request body is too large")}
        converted = mapped.get(status) or (
            MethodNotAllowed(f"{request.method} is not allowed on {request.path}") if status == 405 else None
        )
        if converted is None:
            converted = StarqError(error.description or error.name, code=error.name.lower().replace(" ", "_"),
                                   status=status)  # fmt: skip
        response = Response(error_body(converted), status=status, content_type=JSON)
        allowed = getattr(error, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))  # RFC 9110: a 405 says what is allowed
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        return Response(error_body(internal_error(request.method, request.path)), status=500, content_type=JSON)
