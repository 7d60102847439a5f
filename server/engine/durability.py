"""Durable mode (``STARQ_DURABLE=1``, docs/durability.md): a write is answered only once it is on disk.

``appendfsync always`` on the store is required: with ``everysec``, WAITAOF on Valkey 9.1 (and Redis 7.4 before
redis/redis#13793) confirms writes that are not on disk yet, so WAITAOF alone proves nothing there. Where the
store has WAITAOF, each write is also confirmed with it, on the write's own connection. On a Sentinel-managed
primary, each write is also confirmed by a replica (WAIT), so that a failover to that replica keeps it.
"""

from __future__ import annotations

from typing import Any

import coredis
import coredis.exceptions as redis_errors

from starq.worker_kit.errors import NotDurable, StoreUnavailable

# How long a write waits for the store to confirm it is on disk (and on its replicas), then 503.
DURABLE_TIMEOUT_MS = 2000
# On a Sentinel-managed primary, how many replicas must have a write before it is answered (WAIT): one is what
# a failover needs, since Sentinel promotes a replica that has everything the old primary confirmed to it.
DURABLE_REPLICAS = 1


async def check_durable(redis: Any) -> bool:
    """Checks that the store writes every change to disk before it answers; returns whether it can confirm each
    write with WAITAOF (Redis 7.0 cannot). Raises StoreUnavailable saying what to change when it cannot work."""
    if not isinstance(redis, coredis.Redis):
        raise StoreUnavailable("STARQ_DURABLE=1 supports a single Redis/Valkey server, not a cluster")
    try:
        config = await redis.config_get(["appendonly", "appendfsync"])
    except redis_errors.ResponseError as exc:
        raise StoreUnavailable(f"STARQ_DURABLE=1 needs to read the store's AOF settings (CONFIG GET): {exc}") from exc
    appendonly, appendfsync = config.get("appendonly", "?"), config.get("appendfsync", "?")
    if appendonly != "yes" or appendfsync != "always":
        raise StoreUnavailable(
            "STARQ_DURABLE=1 needs a store that writes every change to disk before it answers, but it has "
            f"appendonly {appendonly} and appendfsync {appendfsync}: set appendonly yes and appendfsync "
            "always on the store (see docs/durability.md), or unset STARQ_DURABLE"
        )
    try:
        async with redis.pipeline(transaction=False, raise_on_error=False) as pipe:
            probe = pipe.waitaof(0, 0, 1)
        await probe
    except (redis_errors.ResponseError, redis_errors.CommandNotSupportedError):
        return False  # Redis 7.0: appendfsync always alone makes each answered write durable
    return True


async def confirm_on_disk(synced: Any) -> None:
    """Raises NotDurable unless a pipelined ``WAITAOF 1 0 …`` reports the local AOF fsynced."""
    try:
        local, _ = await synced
    except redis_errors.ResponseError as exc:
        raise NotDurable(f"the store cannot confirm the write is on disk: {exc}") from exc
    if local < 1:
        raise NotDurable(
            f"the store did not confirm the write on disk within {DURABLE_TIMEOUT_MS} ms; it may or may not be stored"
        )


async def confirm_replicated(replicated: Any, replicas: int) -> None:
    """Raises NotDurable unless a pipelined ``WAIT replicas …`` reports that many replicas have the write."""
    try:
        acknowledged = await replicated
    except redis_errors.ResponseError as exc:
        raise NotDurable(f"the store cannot confirm the write reached a replica: {exc}") from exc
    if acknowledged < replicas:
        raise NotDurable(
            f"{acknowledged} of the {replicas} replica(s) durable mode waits for confirmed the write within "
            f"{DURABLE_TIMEOUT_MS} ms; it may or may not be stored"
        )
