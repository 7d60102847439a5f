"""Dashboard pages (placeholder until the dashboard lands): the overview links to the API docs."""

from __future__ import annotations

from quart import Blueprint, Response


def create_blueprint() -> Blueprint:
    bp = Blueprint("dashboard", __name__)

    @bp.get("/")
    async def overview() -> Response:
        return Response("<!doctype html><title>Starq</title><h1>Starq</h1><p><a href='/api/docs'>API docs</a></p>",
                        content_type="text/html; charset=utf-8")

    return bp
