"""The server's settings: every one has a flag of ``starq serve``, an environment variable and a default."""

from __future__ import annotations

import os
from typing import Any

import attrs

DEV_KEY = "dev-key"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "text")
HTTP_SERVERS = ("starq", "hypercorn")


def _env_bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@attrs.frozen
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = ""
    # Read a redis:// URL listing several host:port pairs as a Redis Cluster (same as redis+cluster://).
    redis_cluster: bool = False
    data_dir: str = ".starq-data"
    workers: int = 1
    api_keys: tuple[str, ...] = ()
    read_auth: bool = False
    insecure: bool = False
    log_level: str = "info"
    # "auto" writes JSON lines unless stderr is a terminal; "json" or "text" force one.
    log_format: str = "auto"
    # One log line per HTTP request (with its request id, status and duration). Off by default: a process
    # whose stderr nobody reads would block once the pipe fills, and each line costs CPU on busy servers.
    access_log: bool = False
    # Limits (documented in docs/api.md).
    max_body_bytes: int = 10 * 1024 * 1024
    max_payload_bytes: int = 1024 * 1024
    max_batch: int = 1000
    max_block_ms: int = 60_000
    max_claim_count: int = 100
    max_list_count: int = 500
    # Most queues the store may hold; a create beyond it gets 409 too_many_queues.
    max_queues: int = 10_000
    # Seconds a graceful shutdown waits for requests in flight.
    shutdown_grace: float = 10.0
    redis_max_connections: int = 16
    # Limits on connections (docs/security.md): the HTTP/1.1 request line plus headers, open connections per
    # server process, seconds an idle connection (or one still sending its request line and headers) is kept,
    # and seconds a request body may take to arrive.
    max_header_bytes: int = 16 * 1024
    max_connections: int = 10_000
    keep_alive_timeout: float = 75.0
    body_timeout: float = 60.0
    # Answer a write only once the store has it on disk (docs/durability.md).
    durable: bool = False
    # Who speaks HTTP/1.1: "starq" (server/http1/, the default) or "hypercorn" (Hypercorn's own protocol code).
    http_server: str = "starq"
    open_paths: frozenset[str] = frozenset({"/api/health", "/api/openapi.json", "/api/docs"})

    @property
    def dev_mode(self) -> bool:
        """No keys configured: the server accepts the well-known ``dev-key`` and only listens on loopback."""
        return not self.api_keys

    @property
    def accepted_keys(self) -> tuple[str, ...]:
        return self.api_keys or (DEV_KEY,)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "STARQ_REDIS_URL" in env:
            values["redis_url"] = env["STARQ_REDIS_URL"]
        if "STARQ_DATA_DIR" in env:
            values["data_dir"] = env["STARQ_DATA_DIR"]
        if env.get("STARQ_API_KEYS"):
            values["api_keys"] = tuple(k.strip() for k in env["STARQ_API_KEYS"].split(",") if k.strip())
        if "STARQ_READ_AUTH" in env:
            values["read_auth"] = _env_bool(env["STARQ_READ_AUTH"])
        for name, var in (
            ("max_body_bytes", "STARQ_MAX_BODY_BYTES"),
            ("max_payload_bytes", "STARQ_MAX_PAYLOAD_BYTES"),
            ("max_batch", "STARQ_MAX_BATCH"),
            ("max_block_ms", "STARQ_MAX_BLOCK_MS"),
            ("max_claim_count", "STARQ_MAX_CLAIM_COUNT"),
            ("max_list_count", "STARQ_MAX_LIST_COUNT"),
            ("max_queues", "STARQ_MAX_QUEUES"),
            ("redis_max_connections", "STARQ_REDIS_MAX_CONNECTIONS"),
        ):
            if env.get(var):
                values[name] = int(env[var])
        if env.get("STARQ_SHUTDOWN_GRACE"):
            values["shutdown_grace"] = float(env["STARQ_SHUTDOWN_GRACE"])
        for name, var in (
            ("log_level", "STARQ_LOG_LEVEL"),
            ("log_format", "STARQ_LOG_FORMAT"),
            ("http_server", "STARQ_HTTP_SERVER"),
        ):
            if env.get(var):
                values[name] = env[var].strip().lower()
        if "STARQ_ACCESS_LOG" in env:
            values["access_log"] = _env_bool(env["STARQ_ACCESS_LOG"])
        for name, var, kind in (
            ("max_header_bytes", "STARQ_MAX_HEADER_BYTES", int),
            ("max_connections", "STARQ_MAX_CONNECTIONS", int),
            ("keep_alive_timeout", "STARQ_KEEP_ALIVE_TIMEOUT", float),
            ("body_timeout", "STARQ_BODY_TIMEOUT", float),
        ):
            if env.get(var):
                values[name] = kind(env[var])
        if "STARQ_DURABLE" in env:
            values["durable"] = _env_bool(env["STARQ_DURABLE"])
        if "STARQ_REDIS_CLUSTER" in env:
            values["redis_cluster"] = _env_bool(env["STARQ_REDIS_CLUSTER"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("redis_cluster") and values.get("redis_url", "").startswith("redis://"):
            # One spelling downstream: the cluster scheme says everything the flag says.
            values["redis_url"] = "redis+cluster://" + values["redis_url"][len("redis://") :]
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """Every setting as JSON-ready values, with secrets hidden (``starq serve --check-config`` prints it)."""
        out = attrs.asdict(self)
        out["api_keys"] = f"{len(self.api_keys)} key(s)" if self.api_keys else "none (dev mode)"
        out["open_paths"] = sorted(self.open_paths)
        scheme, sep, rest = self.redis_url.partition("://")
        if sep and "@" in rest:
            out["redis_url"] = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return out

    def check(self) -> None:
        """Raises ValueError with a clear message when the settings cannot work."""
        if self.redis_url:
            from .engine.store import parse_store_url

            parse_store_url(self.redis_url, cluster=self.redis_cluster)
        if self.dev_mode and self.host not in LOOPBACK_HOSTS and not self.insecure:
            raise ValueError(
                f"refusing to listen on {self.host} in dev mode (no STARQ_API_KEYS set, so anyone could use "
                "the well-known dev-key): set STARQ_API_KEYS, or pass --insecure"
            )
        for name in ("max_header_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"STARQ_{name.upper()} must be at least 1")
        for name in ("keep_alive_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"STARQ_{name.upper()} must be more than 0 seconds")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        if self.http_server not in HTTP_SERVERS:
            raise ValueError(f"--http-server must be one of {', '.join(HTTP_SERVERS)}")
        for name in (
            "max_body_bytes",
            "max_payload_bytes",
            "max_batch",
            "max_block_ms",
            "max_claim_count",
            "max_list_count",
            "max_queues",
            "redis_max_connections",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.shutdown_grace < 0:
            raise ValueError("--shutdown-grace must not be negative")
        if not 0 < self.port < 65536 and self.port != 0:
            raise ValueError("--port must be between 1 and 65535")
