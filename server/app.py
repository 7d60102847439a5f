"""The Quart-Trio application: API blueprints, the dashboard, JSON errors and the delivery guard."""

from __future__ import annotations

from quart_trio import QuartTrio

from .api import http
from .api.delivery import DeliveryGuard
from .api.jobs import bp as jobs_bp
from .api.meta import bp as meta_bp
from .api.queues import bp as queues_bp
from .claims import ClaimBroker
from .engine.engine import Engine
from .settings import Settings


def create_app(engine: Engine, broker: ClaimBroker, settings: Settings) -> QuartTrio:
    """An app serving ``engine``'s queues. The caller owns the engine and runs ``broker``."""
    app = QuartTrio(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        # A long-poll answers within max_block_ms; the body of a request must arrive well within a minute.
        BODY_TIMEOUT=60,
        RESPONSE_TIMEOUT=settings.max_block_ms / 1000 + 30,
    )
    app.extensions["starq"] = http.AppState(engine=engine, broker=broker, settings=settings)
    http.install(app)
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
