"""The Quart-Trio application: API blueprints, the dashboard, JSON errors and the delivery guard."""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

from . import logging_setup, metrics
from .api import http
from .api.delivery import DeliveryGuard
from .api.jobs import bp as jobs_bp
from .api.meta import bp as meta_bp
from .api.queues import bp as queues_bp
from .claims import ClaimBroker
from .engine.engine import Engine
from .engine.errors import HeadersTooLarge
from .settings import Settings

# JSON needs no sources at all. An HTML view (the dashboard, the docs page) that needs more sets its own
# Content-Security-Policy, which is kept; any other HTML gets a strict default: no inline script or style.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HTML_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


async def add_security_headers(response: Response) -> Response:
    """Headers every response carries: no MIME sniffing, no framing, no referrer, and a CSP."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = HTML_CSP if response.mimetype == "text/html" else API_CSP
    return response


def _limit_head_size(app: QuartTrio, limit: int) -> None:
    # Hypercorn bounds a request head only while it arrives in pieces; one that comes whole in a single read
    # passes, so the same limit is checked again here, on what was parsed.
    @app.before_request
    async def check_head_size() -> None:
        scope = request.scope
        size = len(scope["method"]) + len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) + sum(
            len(name) + len(value) + 4 for name, value in scope["headers"])
        if size > limit:
            raise HeadersTooLarge(f"the request line and headers are about {size} bytes; the limit is {limit}")


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
    app.asgi_app = DeliveryGuard(app.asgi_app, lambda: engine)  # type: ignore[method-assign]
    return app
