"""The Quart-Trio application: API blueprints, the dashboard, JSON errors and the delivery guard."""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

from . import logging_setup, metrics
from .api import http
from .api.delivery import DeliveryGuard
from .api.fastpath import HotPath
from .api.jobs import bp as jobs_bp
from .api.meta import bp as meta_bp
from .api.queues import bp as queues_bp
from .claims import ClaimBroker
from .engine.engine import Engine
from .settings import Settings


async def add_security_headers(response: Response) -> Response:
    """Headers every response carries (``http.SECURITY_HEADERS``), and a CSP unless the view set its own."""
    headers = response.headers
    for name, value in http.SECURITY_HEADERS:
        headers.setdefault(name, value)
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = http.HTML_CSP if response.mimetype == "text/html" else http.API_CSP
    return response


def _limit_head_size(app: QuartTrio, limit: int) -> None:
    @app.before_request
    async def check_head_size() -> None:
        http.check_head_size(request.scope, limit)


def create_app(engine: Engine, broker: ClaimBroker, settings: Settings) -> QuartTrio:
    """An app serving ``engine``'s queues. The caller owns the engine and runs ``broker``."""
    app = QuartTrio(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        # A long-poll answers within max_block_ms; a request body that arrives slower than this gets 408.
        BODY_TIMEOUT=settings.body_timeout,
        RESPONSE_TIMEOUT=settings.max_block_ms / 1000 + 30,
    )
    # Request ids and HTTP metrics first, so even a request refused by auth is counted and carries an id.
    logging_setup.install_request_ids(app, access=settings.access_log)
    broker = metrics.install(app, engine, broker)
    app.extensions["starq"] = http.AppState(engine=engine, broker=broker, settings=settings)
    _limit_head_size(app, settings.max_header_bytes)
    http.install(app)
    app.after_request(add_security_headers)
    app.register_blueprint(meta_bp)
    app.register_blueprint(queues_bp)
    app.register_blueprint(jobs_bp)
    try:
        from starq.dashboard import create_blueprint
    except ImportError:  # the dashboard is optional to the API
        pass
    else:
        app.register_blueprint(create_blueprint())
    # The hot job routes skip Quart (see fastpath.py); the delivery guard wraps both paths.
    hot = HotPath(
        app.asgi_app,
        app.extensions["starq"],
        app.extensions["starq.metrics"],
        access=settings.access_log,
        response_timeout=app.config["RESPONSE_TIMEOUT"],
    )
    app.asgi_app = DeliveryGuard(hot, lambda: engine)  # type: ignore[method-assign]
    return app
