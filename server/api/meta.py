"""Health, metrics, the OpenAPI document and the reference page."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from starq.worker_kit.errors import StoreUnavailable

from . import shapes
from .openapi import DOCS_CSP, build_openapi, docs_page
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


@operation("GET", "/api/openapi.json", summary="This API's OpenAPI 3.1 document", tag=TAG, auth="none",
           responses={200: None})  # fmt: skip
async def openapi(st: AppState, req: Request) -> Answer:
    return build_openapi(), 200


@operation("GET", "/api/docs", summary="This API's reference, as a page", tag=TAG, auth="none",
           responses={200: None})  # fmt: skip
async def docs(st: AppState, req: Request) -> Answer:
    return Reply(docs_page().encode(), "text/html; charset=utf-8", headers=(("content-security-policy", DOCS_CSP),))
