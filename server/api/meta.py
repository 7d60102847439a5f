"""Health, the OpenAPI document and the human docs page."""

from __future__ import annotations

from quart import Blueprint, Response

from ..engine.errors import StoreUnavailable
from . import shapes
from .http import json_response, route, state
from .openapi import DOCS_PAGE, build_openapi

bp = Blueprint("meta", __name__)


@route(
    bp,
    "GET",
    "/api/health",
    summary="Is the server up and its store reachable?",
    tag="meta",
    responses={200: shapes.Health, 503: shapes.Health},
)
async def health() -> Response:
    try:
        store = await state().engine.ping()
    except StoreUnavailable as exc:
        return json_response({"status": "error", "detail": exc.detail}, 503)
    return json_response(
        {
            "status": "ok",
            "redis_version": store["valkey_version"] or store["redis_version"],
            "waiting_claims": state().broker.waiting,
        }
    )


@bp.get("/api/openapi.json")
async def openapi() -> Response:
    return json_response(build_openapi())


# The docs page is static HTML with one inline stylesheet and no script.
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


@bp.get("/api/docs")
async def docs() -> Response:
    return Response(
        str(DOCS_PAGE), content_type="text/html; charset=utf-8", headers={"Content-Security-Policy": DOCS_CSP}
    )
