"""The server's settings, each declared once: name, type (from its default), default, bounds, help.

From these declarations come the settings object, the environment variables (``STARQ_<NAME>``), the flags of
``starq serve`` (``--<name>``, built in ``cli/main.py``), the checks of ``--check-config`` and the settings
table of ``docs/configuration.md`` (``settings_table()``; a test compares it with the file).
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from starq.worker_kit.protocol import DEFAULT_MAX_BATCH, MAX_BLOCK_MS

DEV_KEY = "dev-key"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Reads that stay open with read auth on: what a load balancer and a new client need first.
OPEN_PATHS = frozenset({"/api/health", "/api/health/live", "/api/health/ready", "/api/openapi.json", "/api/docs"})
TRUE_WORDS = ("1", "true", "yes", "on")


def setting(
    default: Any,
    help: str,
    *,
    doc: str = "",
    shown: str = "",
    flag: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """Declares a setting.

    Args:
        default: its value when neither a flag nor the environment gives one; its type is the setting's.
        help: one line for ``starq serve --help``.
        doc: what docs/configuration.md says of it (default: ``help``).
        shown: the default as the docs and the help show it (default: the value).
        flag: whether ``starq serve`` has a flag for it (the API keys come only from the environment).
        minimum, maximum, above: bounds (``above``: strictly greater than).
        choices: the only values allowed.
    """
    metadata = {"help": help, "doc": doc or help, "shown": shown, "flag": flag, "minimum": minimum,
                "maximum": maximum, "above": above, "choices": choices}  # fmt: skip
    return attrs.field(default=default, metadata=metadata)


@attrs.frozen
class Settings:
    host: str = setting(
        "127.0.0.1",
        "Address to listen on.",
        doc="Address to listen on. Anything but loopback needs API keys (or `--insecure`).",
    )
    port: int = setting(
        8000,
        "Port to listen on (0 = any free one).",
        minimum=0,
        maximum=65535,
        doc="Port to listen on; `0` picks a free one (the chosen port is printed).",
    )
    redis_url: str = setting(
        "",
        "Redis/Valkey URL; unset: an embedded Valkey runs with its data in --data-dir.",
        shown="embedded",
        doc="The store: one server, a Redis Cluster or a Sentinel-managed primary (see [Store URLs](#store-urls)). "
        "Unset: an embedded Valkey is started with its AOF in `--data-dir`.",
    )
    redis_cluster: bool = setting(
        False,
        "Read a redis://host:port,host:port URL as a Redis Cluster.",
        doc="Read a `redis://host:port,host:port` URL as a Redis Cluster (the same as `redis+cluster://`).",
    )
    data_dir: str = setting(
        ".starq-data",
        "Where the embedded store keeps its data.",
        doc="Where the embedded store keeps its data (ignored with `--redis-url`); held by one "
        "server at a time, mode 0700.",
    )
    workers: int = setting(
        1,
        "Server processes sharing the port.",
        minimum=1,
        doc="Server processes sharing the port (a supervisor restarts one that dies).",
    )
    api_keys: tuple[str, ...] = setting(
        (),
        "Comma-separated API keys.",
        flag=False,
        shown="unset: dev mode",
        doc="Comma-separated API keys; any one is accepted (several allow rotation). Unset: dev mode, the key is "
        "`dev-key`. Only from the environment, so keys never show in `ps` output or shell history.",
    )
    read_auth: bool = setting(
        False,
        "Require a key on GET /api/* and /metrics too.",
        doc="Require a key on `GET /api/*` and `/metrics` too (`/api/health*`, `/api/openapi.json` and `/api/docs` "
        "stay open).",
    )
    insecure: bool = setting(
        False,
        "Allow a non-loopback --host in dev mode.",
        doc="Allow a non-loopback `--host` in dev mode. Never in production.",
    )
    log_level: str = setting("info", "Log level.", choices=("debug", "info", "warning", "error"))
    log_format: str = setting(
        "auto",
        "Log lines as JSON or text (auto: JSON unless stderr is a terminal).",
        choices=("auto", "json", "text"),
        doc="`json` (one object per line), `text`, or `auto`: JSON unless stderr is a terminal.",
    )
    access_log: bool = setting(
        False,
        "One log line per HTTP request.",
        doc="One log line per HTTP request: method, path, status, duration, request id (the image and compose turn "
        "it on).",
    )
    # Limits (documented in docs/api.md).
    max_body_bytes: int = setting(
        10 * 1024 * 1024, "Largest request body; larger gets 413.", minimum=1, shown="10485760 (10 MiB)"
    )
    max_payload_bytes: int = setting(
        1024 * 1024,
        "Largest payload or result of one job, as JSON; larger gets 413.",
        minimum=1,
        shown="1048576 (1 MiB)",
    )
    max_batch: int = setting(
        DEFAULT_MAX_BATCH, "Most jobs in one submit, or outcomes in one ack; more gets 413.", minimum=1
    )
    max_block_ms: int = setting(
        MAX_BLOCK_MS, "Longest long-poll a claim may ask for; a larger block_ms is capped to it.", minimum=1
    )
    max_claim_count: int = setting(100, "Most jobs one claim hands out; a larger count is capped to it.", minimum=1)
    max_list_count: int = setting(500, "Largest page of a job listing.", minimum=1)
    max_queues: int = setting(10_000, "Most queues the store may hold; one more gets 409 too_many_queues.", minimum=1)
    redis_max_connections: int = setting(
        16,
        "Store connections per server process.",
        minimum=1,
        doc="Store connections per server process. Waiting long-polls hold none, so this stays small.",
    )
    shutdown_grace: float = setting(
        10.0,
        "Seconds a graceful shutdown waits for requests in flight.",
        minimum=0,
        shown="10",
        doc="Seconds a graceful shutdown (SIGTERM/SIGINT) waits for requests in flight. Parked long-polls are "
        "answered at once.",
    )
    max_header_bytes: int = setting(16 * 1024, "Largest request line plus headers; larger gets 431.", minimum=1)
    max_connections: int = setting(
        0,
        "Open connections per server process; more get 503 (0 = derived from the open-file limit).",
        minimum=0,
        shown="0 (derived)",
        doc="Open connections per server process; more get `503 too_many_connections`. `0` derives it from the "
        "open-file limit (`RLIMIT_NOFILE`, whose soft limit the server first raises to the hard limit where allowed): "
        "the limit less a reserve for the store's connections and other files. A number that does not fit below "
        "the limit stops the start with an error. The start-up log says the cap and why.",
    )
    keep_alive_timeout: float = setting(
        75.0,
        "Seconds an idle keep-alive connection is kept open.",
        above=0,
        shown="75",
        doc="Seconds an idle keep-alive connection is kept open (it also bounds how long a request head may take). "
        "Keep it above your proxy's upstream idle timeout.",
    )
    body_timeout: float = setting(
        60.0, "Seconds a request body may take to arrive; slower gets 408.", above=0, shown="60"
    )
    store_timeout: float = setting(
        2.0,
        "Seconds a store round trip may take before the request gets 503 store_unavailable.",
        above=0,
        shown="2",
        doc="Seconds each step of a store round trip (connect, wait for a pooled connection, the reply) may take; "
        "past it the request gets `503 store_unavailable`, `/api/health/ready` included, while parked long-polls "
        "keep waiting. Every call Starq makes is bounded work far below it.",
    )
    events_keepalive: float = setting(
        15.0,
        "Seconds between keep-alive comments on an idle event stream.",
        above=0,
        shown="15",
        doc="Seconds between keep-alive comments (`: keep-alive`) on an idle event stream, so proxies keep it open.",
    )
    durable: bool = setting(
        False,
        "Answer a write only once the store has it on disk.",
        doc="Answer a write only once the store has it on disk: needs `appendfsync always` on the store (the "
        "embedded store is started so), and confirms each write with WAITAOF where the store has it; on a "
        "Sentinel-managed primary, also once a replica has it (WAIT), so a failover loses none. See "
        "[durability](durability.md).",
    )

    @property
    def dev_mode(self) -> bool:
        """No keys configured: the server accepts the well-known ``dev-key`` and only listens on loopback."""
        return not self.api_keys

    @property
    def accepted_keys(self) -> tuple[str, ...]:
        return self.api_keys or (DEV_KEY,)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings from ``environ`` (default: the process's), with ``overrides`` (flags; None = not
        given) winning over it.

        Raises:
            ValueError: a variable does not read as its setting's type.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            raw = env.get(env_var(field.name))
            # An empty variable counts as unset, except where "" is itself a value (the store URL).
            if raw is not None and (raw.strip() or field.default == ""):
                values[field.name] = _read(field, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        url = values.get("redis_url", "")
        if values.get("redis_cluster") and url.startswith("redis://"):
            # One spelling downstream: the cluster scheme says everything the flag says.
            values["redis_url"] = "redis+cluster://" + url[len("redis://") :]
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """Every setting as JSON-ready values, with secrets hidden (``starq serve --check-config`` prints it)."""
        out = attrs.asdict(self)
        out["api_keys"] = f"{len(self.api_keys)} key(s)" if self.api_keys else "none (dev mode)"
        scheme, sep, rest = self.redis_url.partition("://")
        if sep and "@" in rest:
            out["redis_url"] = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return out

    def check(self) -> None:
        """Raises ValueError with a clear message naming the setting when the settings cannot work."""
        for field in attrs.fields(type(self)):
            _check(field, getattr(self, field.name))
        if self.redis_url:
            from .engine.store import parse_store_url

            parse_store_url(self.redis_url, cluster=self.redis_cluster)
        if self.dev_mode and self.host not in LOOPBACK_HOSTS and not self.insecure:
            raise ValueError(
                f"refusing to listen on {self.host} in dev mode (no STARQ_API_KEYS set, so anyone could use "
                "the well-known dev-key): set STARQ_API_KEYS, or pass --insecure"
            )


def env_var(name: str) -> str:
    return "STARQ_" + name.upper()


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def _label(field: attrs.Attribute) -> str:
    """How a message names a setting: its flag, or its variable when it has no flag."""
    return flag_of(field.name) if field.metadata["flag"] else env_var(field.name)


def _read(field: attrs.Attribute, raw: str) -> Any:
    kind: type[Any] = type(field.default)
    if kind is bool:
        return raw.strip().lower() in TRUE_WORDS
    if kind is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind is str:
        return raw.strip().lower() if field.metadata["choices"] else raw
    try:
        return kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ValueError(f"{env_var(field.name)} ({_label(field)}) must be {noun}, not {raw!r}") from None


def _check(field: attrs.Attribute, value: Any) -> None:
    meta, label = field.metadata, _label(field)
    if meta["choices"] and value not in meta["choices"]:
        raise ValueError(f"{label} must be one of {', '.join(meta['choices'])}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ValueError(f"{label} must be at least {meta['minimum']:g}")
    if meta["maximum"] is not None and value > meta["maximum"]:
        raise ValueError(f"{label} must be at most {meta['maximum']:g}")
    if meta["above"] is not None and value <= meta["above"]:
        raise ValueError(f"{label} must be more than {meta['above']:g}")


def shown_default(field: attrs.Attribute) -> str:
    """A setting's default as the help and the docs show it."""
    if field.metadata["shown"]:
        return field.metadata["shown"]
    if isinstance(field.default, bool):
        return "on" if field.default else "off"
    return str(field.default)


def settings_table() -> str:
    """The settings table of docs/configuration.md, from the declarations."""
    rows = ["| Flag | Environment variable | Default | What it does |", "|---|---|---|---|"]
    for field in attrs.fields(Settings):
        flag = flag_of(field.name)
        if not field.metadata["flag"]:
            shown_flag = "*(environment only)*"
        elif isinstance(field.default, bool):
            shown_flag = f"`{flag} / --no-{flag[2:]}`"
        else:
            shown_flag = f"`{flag}`"
        rows.append(f"| {shown_flag} | `{env_var(field.name)}` | `{shown_default(field)}` | {field.metadata['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
