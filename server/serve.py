"""``starq serve``: the embedded store, the listening socket, Hypercorn, background loops, graceful shutdown.

One process (``--workers 1``) serves in-process. With more, the parent opens the listening socket and the
store, and supervises that many child processes that all serve the same socket (passed by file descriptor,
as Hypercorn's own workers do); a child that dies is restarted.

Shutdown on SIGINT/SIGTERM: stop accepting, answer parked long-polls with no jobs at once, let requests in
flight finish (up to ``shutdown_grace``), stop the background loops, close the store client, stop the
embedded store. A second signal ends the process at once.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from functools import partial

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from starq.worker_kit.errors import StoreUnavailable

from . import connection_cap, gc_tuning, http1
from .app import create_app
from .data_dir import DataDirInUse, lock_data_dir
from .embedded import EmbeddedStore, die_with_parent, embedded_store
from .engine.engine import open_engine
from .hub import Hub
from .logging_setup import configure_logging
from .maintenance import maintain_forever
from .metrics import Metrics
from .restarts import GaveUp, RestartPolicy
from .settings import Settings
from .store_keeper import StoreKeeper

log = logging.getLogger("starq")

BACKLOG = 4096  # Hypercorn's default of 100 resets connections when thousands of workers connect at once.
CHILD_SETTINGS_ENV = "STARQ_CHILD_SETTINGS"
# How long a starting server waits for a store that does not answer yet before giving up.
STORE_WAIT_SECONDS = 30.0


class StartError(Exception):
    """The server cannot start; the message says why, in one line."""


def open_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartError(f"port {port} is in use — another starq serve?") from None
        raise StartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def hypercorn_config(settings: Settings, fd: int) -> Config:
    config = Config()
    config.bind = [f"fd://{fd}"]
    config.backlog = BACKLOG
    config.graceful_timeout = settings.shutdown_grace
    # Idle keep-alive connections close after this; it also bounds how long a client may take to send its
    # request line and headers (Hypercorn's idle timer runs until a whole request head has arrived).
    config.keep_alive_timeout = settings.keep_alive_timeout
    # Request line plus headers larger than this get 431 and the connection is closed.
    config.h11_max_incomplete_size = settings.max_header_bytes
    cap = connection_cap.resolve(settings.max_connections, settings.redis_max_connections, settings.redis_cluster)
    http1.enable(config, cap.connections)  # every connection: Starq's own HTTP/1.1 path
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve(
    settings: Settings, redis_url: str, fd: int, *, shutdown: trio.Event, task_status=trio.TASK_STATUS_IGNORED
) -> None:
    """Serves until ``shutdown`` is set, then shuts down gracefully."""
    metrics = Metrics()  # everything this process does goes through its engine, so /metrics counts it all
    engine_opened = open_engine(
        redis_url,
        durable=settings.durable,
        max_connections=settings.redis_max_connections,
        wait_for_store=STORE_WAIT_SECONDS,
        observer=metrics,
        store_timeout=settings.store_timeout,
    )
    async with engine_opened as engine, trio.open_nursery() as nursery:
        hub = Hub(engine)
        await nursery.start(hub.run)
        await nursery.start(maintain_forever, engine)
        app = create_app(engine, hub, settings)
        gc_tuning.tune_for_serving()

        async def trigger() -> None:
            await shutdown.wait()
            hub.close()  # parked long-polls and open streams answer now instead of holding up the drain

        async def http(task_status=trio.TASK_STATUS_IGNORED) -> None:
            await hypercorn_serve(
                app, hypercorn_config(settings, fd), shutdown_trigger=trigger, task_status=task_status
            )
            nursery.cancel_scope.cancel()  # requests drained: stop the background loops

        await nursery.start(http)
        task_status.started()


async def _watch_signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if shutdown.is_set():
                log.warning("second %s: exiting now", signal.Signals(signum).name)
                os._exit(1)
            log.info("%s received: shutting down", signal.Signals(signum).name)
            shutdown.set()


async def _serve_with_signals(settings: Settings, redis_url: str, fd: int, store: EmbeddedStore | None) -> None:
    shutdown = trio.Event()
    serving = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, shutdown)
        if store is not None:
            nursery.start_soon(StoreKeeper(store).keep_forever)

        async def stop_while_starting() -> None:
            # Still waiting for the store when told to stop: there is nothing to drain, so stop at once.
            await shutdown.wait()
            if not serving:
                nursery.cancel_scope.cancel()

        async def run_serve(task_status=trio.TASK_STATUS_IGNORED) -> None:
            await serve(settings, redis_url, fd, shutdown=shutdown, task_status=task_status)
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_while_starting)
        await nursery.start(run_serve)
        serving = True


def run(settings: Settings) -> None:
    """Runs the server until a signal stops it (the body of ``starq serve``).

    In this order, so that a start that cannot work stops before it touches anything: take the data folder
    (embedded store only), bind the port, start the embedded store, then serve.

    Raises:
        StartError: the data folder is held by another server, the port is in use, or the store cannot start.
    """
    configure_logging(settings.log_level, settings.log_format)
    settings.check()
    # Before any worker process starts: they inherit the raised open-file limit and serve with this number.
    try:
        cap = connection_cap.resolve(settings.max_connections, settings.redis_max_connections, settings.redis_cluster)
    except connection_cap.CapError as exc:
        raise StartError(str(exc)) from None
    settings = attrs.evolve(settings, max_connections=cap.connections)
    with ExitStack() as stack:
        lock = None
        if not settings.redis_url:
            try:
                lock = stack.enter_context(lock_data_dir(settings.data_dir))
            except DataDirInUse as exc:
                raise StartError(str(exc)) from None
        listener = open_listener(settings.host, settings.port)
        stack.callback(_close_listener, listener)
        if settings.dev_mode:
            log.warning(
                "DEV MODE: no STARQ_API_KEYS set; writes accept the key 'dev-key'. "
                "Set STARQ_API_KEYS=key1,key2 before exposing this server."
            )
        store = None
        redis_url = settings.redis_url
        if lock is not None:
            store = _start_embedded_store(settings, lock)
            stack.callback(_stop_embedded_store, store)
            redis_url = store.url
        if settings.durable:
            _check_durable(redis_url)
        host, port = listener.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"Starq is serving on http://{shown}:{port}  (API: /api/v1, docs: /api/docs, dashboard: /)", flush=True)
        log.info("started: %d worker process(es), store %s", settings.workers, _redact(redis_url))
        log.info("connections: at most %s per worker process (%s)", f"{cap.connections:,}", cap.reason)
        try:
            if settings.workers == 1:
                trio.run(_serve_with_signals, settings, redis_url, listener.fileno(), store)
            else:
                _supervise(settings, redis_url, listener, store)
        except* GaveUp as group:
            log.error("%s", group.exceptions[0])
            raise SystemExit(3) from None
        log.info("stopped")


def _close_listener(listener: socket.socket) -> None:
    try:
        listener.close()
    except OSError:
        pass  # Hypercorn closed the descriptor it served on


def _start_embedded_store(settings: Settings, lock: int) -> EmbeddedStore:
    # Durable mode needs the store to fsync every write before it answers (docs/durability.md).
    store = embedded_store(
        settings.data_dir,
        extra_args=["--appendfsync", "always"] if settings.durable else None,
        inherit_fds=(lock,),
    )
    store.spawn()
    try:
        store.wait_ready()
    except RuntimeError as exc:
        store.kill()
        raise StartError(f"the embedded store did not start: {exc}") from None
    assert store.process is not None
    log.info(
        "embedded store started (pid %d, data in %s, AOF fsync %s)",
        store.process.pid,
        store.data_dir,
        "on every write" if settings.durable else "every second",
    )
    return store


def _stop_embedded_store(store: EmbeddedStore) -> None:
    store.stop()
    log.info("embedded store stopped")


def _check_durable(redis_url: str) -> None:
    """Stops the start, with the reason, when STARQ_DURABLE=1 meets a store that cannot honour it (or cannot
    be reached). Checked here, before any worker process starts, so a bad store does not send them into a
    restart loop."""

    async def check() -> str:
        # Waits for a store that is still starting as long as serve() itself would.
        async with open_engine(redis_url, max_connections=2, wait_for_store=30.0, durable=True) as engine:
            return engine.durability

    refused: StoreUnavailable | None = None
    try:
        how = trio.run(check)
    except* StoreUnavailable as group:
        refused = group.exceptions[0]  # type: ignore[assignment]
    if refused is not None:
        log.error("cannot start: %s", refused.detail)
        raise SystemExit(2)
    log.info("durable mode: every write is answered once it is on disk (%s)", how)


def _redact(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


# -- several worker processes ---------------------------------------------------------------------------


def _spawn_child(settings: Settings, redis_url: str, fd: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # attrs.asdict keeps tuples and frozensets; JSON carries them as lists (the child converts them back).
    env[CHILD_SETTINGS_ENV] = json.dumps({**attrs.asdict(settings), "redis_url": redis_url, "workers": 1}, default=list)
    # A child must not outlive its supervisor (and with it the embedded store it serves).
    return subprocess.Popen(
        [sys.executable, "-m", "starq.server.serve", str(fd)],
        env=env,
        pass_fds=(fd,),
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, before exec
    )


def _supervise(settings: Settings, redis_url: str, listener: socket.socket, store: EmbeddedStore | None) -> None:
    stopping = False

    def on_signal(signum, frame) -> None:
        nonlocal stopping
        if stopping:
            for child in children:
                child.kill()
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children = [_spawn_child(settings, redis_url, listener.fileno()) for _ in range(settings.workers)]
    # When each dead child's slot may start again: a child that keeps dying is restarted ever more slowly, and
    # past the policy's limit the server stops (``restarts.py``).
    restart_at: dict[int, float] = {}
    policy = RestartPolicy("worker processes")
    keeper = StoreKeeper(store) if store is not None else None
    while True:
        if stopping:
            for child in children:
                child.wait()
            return
        try:
            for i, child in enumerate(children):
                if i not in restart_at and child.poll() is not None:
                    pause = policy.pause_after_exit(f"the last with {child.returncode}")
                    log.warning("worker process %d exited with %s; restarting it in %.1f s", child.pid,
                                child.returncode, pause)  # fmt: skip
                    restart_at[i] = time.monotonic() + pause
                if i in restart_at and time.monotonic() >= restart_at[i]:
                    del restart_at[i]
                    children[i] = _spawn_child(settings, redis_url, listener.fileno())
            if keeper is not None:
                keeper.check()
        except GaveUp:
            on_signal(signal.SIGTERM, None)
            for child in children:
                child.wait()
            raise
        time.sleep(0.2)


def _child_main() -> None:
    raw = json.loads(os.environ.pop(CHILD_SETTINGS_ENV))
    raw["api_keys"] = tuple(raw["api_keys"])
    settings = Settings(**raw)
    configure_logging(settings.log_level, settings.log_format)
    trio.run(partial(_serve_with_signals, settings, settings.redis_url, int(sys.argv[1]), None))


if __name__ == "__main__":
    _child_main()
