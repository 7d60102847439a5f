"""Health, metrics, the OpenAPI document and the reference page."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from starq.worker_kit.errors import StoreUnavailable

from . import shapes
from .openapi import (
    ASSET_CACHE,
    ASSET_PATH,
    DOCS_CSP,
    DOCS_PATH,
    OPENAPI_PATH,
    accepts_gzip,
    asset,
    build_openapi,
    docs_page,
    gzipped,
)
from .operations import Answer, AppState, Reply, Request, operation

TAG = "meta"


@operation("GET", "/api/health", summary="Is the server up and its store reachable?", tag=TAG, auth="none",
           responses={200: shapes.Health, 503: shapes.Health})  # fmt: skip
async def health(st: AppState, req: Request) -> Answer:
    try:
        store = await st.engine.ping()
    except StoreUnavailable:
        # Nothing about the store (its address, its socket path) to a caller that may be anyone.
        return {"status": "error", "detail": "the store is unavailable"}, 503
    return {
        "status": "ok",
        "redis_version": store["valkey_version"] or store["redis_version"],
        "waiting_claims": st.hub.claims.waiting,
    }, 200


@operation("GET", "/api/health/ready", summary="Readiness: the server serves and its store answers (as /api/health)",
           tag=TAG, auth="none", responses={200: shapes.Health, 503: shapes.Health})  # fmt: skip
async def ready(st: AppState, req: Request) -> Answer:
    return await health(st, req)


@operation("GET", "/api/health/live", summary="Liveness: the process serves (even with its store down)", tag=TAG,
           auth="none", responses={200: shapes.Health})  # fmt: skip
async def live(st: AppState, req: Request) -> Answer:
    return {"status": "ok"}, 200


@operation("GET", "/metrics", summary="Prometheus metrics of this server process", tag=TAG,
           responses={200: None})  # fmt: skip
async def metrics(st: AppState, req: Request) -> Answer:
    await st.metrics.refresh(st.engine, st.hub)
    return Reply(st.metrics.render(), CONTENT_TYPE_LATEST)


@operation("GET", OPENAPI_PATH, summary="This API's OpenAPI 3.1 document", tag=TAG, auth="none",
           responses={200: None})  # fmt: skip
async def openapi(st: AppState, req: Request) -> Answer:
    return build_openapi(), 200


@operation("GET", DOCS_PATH, summary="This API's reference, as a page (Swagger UI)", tag=TAG, auth="none",
           responses={200: None})  # fmt: skip
async def docs(st: AppState, req: Request) -> Answer:
    # no-cache: the page names the current files, whose names change with their content.
    headers = (("content-security-policy", DOCS_CSP), ("cache-control", "no-cache"))
    return Reply(docs_page(), "text/html; charset=utf-8", headers=headers)


@operation("GET", ASSET_PATH, summary="A file of the reference page, under a name that changes with its content",
           tag=TAG, auth="none", responses={200: None})  # fmt: skip
async def docs_asset(st: AppState, req: Request) -> Answer:
    found = asset(req.params["asset"])
    headers = [("cache-control", ASSET_CACHE), ("vary", "accept-encoding")]
    body = found.body
    if accepts_gzip(req.scope["headers"]):
        body = await gzipped(found)
        headers.append(("content-encoding", "gzip"))
    return Reply(body, found.content_type, headers=tuple(headers))
