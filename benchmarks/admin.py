"""The harness's own setup and checks (create, fill, inspect and delete queues; claim jobs to extend), over the
HTTP API only.

Never the engine: the benchmark runs against other versions of Starq too (``run --baseline REV``), whose Lua
library and engine differ from this checkout's, and opening this checkout's engine on their store would load
this checkout's library into it. The API is what every version shares. None of this is on a measured path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .harness import Server
from .rawhttp import HTTPConnection

QUEUES = "/api/v1/queues"
# The server's default STARQ_MAX_BATCH (the same in every version so far).
BATCH = 1000


class ApiError(Exception):
    """The server answered a setup request with something other than what it should."""


def default_item(n: int) -> dict[str, Any]:
    return {"payload": {"n": n}}


class Admin:
    """The harness's setup and checks against one server. Each call has a connection of its own: one held
    through a measured phase would sit idle past the server's keep-alive timeout and be closed under it."""

    def __init__(self, server: Server) -> None:
        self._server = server

    @classmethod
    async def open(cls, server: Server) -> Admin:
        return cls(server)

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def _call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        data = b"" if body is None else orjson.dumps(body)
        conn = await HTTPConnection.open(self._server.host, self._server.port)
        try:
            status, reply = await conn.request(method, path, data)
        finally:
            await conn.aclose()
        if status != expect:
            raise ApiError(f"{method} {path}: {status} {reply[:300]!r}")
        return orjson.loads(reply) if reply else None

    async def create_queue(self, name: str, **settings: Any) -> dict[str, Any]:
        return await self._call("POST", QUEUES, {"name": name, **settings}, expect=201)

    async def info(self, name: str) -> dict[str, Any]:
        """The queue's info: its settings and its counts (``pending``, ``claimed``, ``completed``, …)."""
        return await self._call("GET", f"{QUEUES}/{name}")

    async def delete_queue(self, name: str) -> None:
        await self._call("DELETE", f"{QUEUES}/{name}")

    async def submit(self, name: str, items: list[dict[str, Any]]) -> list[str]:
        """Submits ``items`` (job bodies) in order, in batches of up to ``BATCH``; returns their ids in order."""
        ids: list[str] = []
        for first in range(0, len(items), BATCH):
            reply = await self._call("POST", f"{QUEUES}/{name}/jobs", {"jobs": items[first : first + BATCH]}, 201)
            ids.extend(job["id"] for job in reply["jobs"])
        if len(ids) != len(items) or len(set(ids)) != len(ids):
            raise ApiError(f"submitted {len(items)} jobs to {name} and got {len(set(ids))} distinct ids back")
        return ids

    async def fill(self, name: str, jobs: int, item: Callable[[int], dict[str, Any]] = default_item) -> list[str]:
        """Submits ``jobs`` jobs, ``item(n)`` for n = 0, 1, …, in that order; returns their ids in that order."""
        return await self.submit(name, [item(n) for n in range(jobs)])

    async def claim(self, name: str, count: int, worker: str = "bench-admin") -> list[dict[str, Any]]:
        reply = await self._call(
            "POST", f"{QUEUES}/{name}/jobs/claim", {"count": count, "block_ms": 0, "worker": worker}
        )
        return reply["jobs"]

    async def counts(self, name: str) -> dict[str, int]:
        info = await self.info(name)
        return {s: int(info[s]) for s in ("pending", "scheduled", "claimed", "completed", "failed", "cancelled")}
