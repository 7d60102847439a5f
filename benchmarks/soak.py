"""``python -m benchmarks soak --minutes N [--proxied]``: N minutes of mixed load against ``starq serve --workers 2``
while faults strike at random, then an exactly-once ledger and the memory curve.

The load (``fault_load.Load``) submits single jobs and small batches, some delayed; workers long-poll claims of
varying length, complete most jobs and fail every seventh once (it is retried), and retry a complete or fail that
got no answer until it gets one, so no completion's outcome is left unknown. The queue keeps finished records for
a short retention only, so memory must level off once retention applies.

The faults, one at a time, in a shuffled round so that even a short run meets each kind:

- ``store-kill``: ``kill -9`` of the store, restarted on its port from its AOF after up to 3 s;
- ``server-kill``: ``kill -9`` of one of the two server processes; the supervisor starts another;
- ``store-stop``: SIGSTOP of the store for 1–4 s (longer than the server's store timeout), then SIGCONT;
- with ``--proxied``, the server reaches the store through ``fault_proxy.FaultProxy``, which adds
  ``link-latency`` (20–100 ms each way for a few seconds) and ``link-cut`` (every connection closed at once).

Every few seconds it samples the server processes' RSS and open descriptors and the store's ``used_memory`` and
connected clients (asked directly, not through the proxy). Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import trio

from starq.server.embedded import EmbeddedStore, free_port, start_store

from . import harness, procstat
from .fault_load import Ledger, Load, NotDrained
from .fault_proxy import FaultProxy

QUEUE = "soak"
# Short leases so work stranded by a fault comes back within seconds; retries enough that no job dies of faults.
QUEUE_SETTINGS = {"claim_timeout": 3, "retry_delay": 0, "max_retries": 50}
SAMPLE_EVERY = 5.0
BASE_FAULTS = ("store-kill", "server-kill", "store-stop")
PROXY_FAULTS = ("link-latency", "link-cut")


@attrs.frozen
class Sample:
    t: float  # seconds since the load started
    server_rss_mb: float  # all server processes together
    server_fds: int  # their open descriptors (sockets included)
    store_used_mb: float | None  # None: the store did not answer (down or stopped)
    store_clients: int | None


@attrs.frozen
class SoakReport:
    seconds: float
    proxied: bool
    faults: dict[str, int]
    ledger: Ledger
    samples: list[Sample]
    responses: dict[str, int]
    load_average: str
    not_drained: str  # empty when the load drained; else what was left

    @property
    def ok(self) -> bool:
        return self.ledger.ok and not self.ledger.lost and not self.not_drained

    def summary(self) -> dict[str, Any]:
        """The figures a person quotes: jobs, ledger, faults, and memory at start and end."""
        up = [s for s in self.samples if s.store_used_mb is not None]
        first, last = (up[0], up[-1]) if up else (None, None)
        led = self.ledger
        return {
            "load seconds": round(self.seconds),
            "proxied": self.proxied,
            "faults injected": sum(self.faults.values()),
            "faults by kind": self.faults,
            "jobs acknowledged": led.acked,
            "jobs completed (checked)": led.completed,
            "lost": len(led.lost),
            "submits with unknown outcome": led.unknown,
            "of which stored": led.unknown_stored,
            "stored twice": len(led.stored_twice),
            "deliveries": led.deliveries,
            "delivered twice": led.delivered_twice,
            "  after a planned fail": led.delivered_twice_after_fail,
            "  after a lease expired or a claim's answer was lost": led.delivered_twice_after_lease_expiry,
            "delivered after completion": len(led.delivered_after_completion),
            "500s and timeouts": led.broken_answers,
            "drained": self.not_drained or "yes",
            "server RSS MB start/end/max": _span([s.server_rss_mb for s in self.samples]),
            "server descriptors start/end/max": _span([s.server_fds for s in self.samples]),
            "store used_memory MB start/end/max": _span([s.store_used_mb for s in up]),
            "store clients start/end/max": _span([s.store_clients for s in up]),
            "first/last sample at s": (first.t if first else None, last.t if last else None),
            "machine load (1/5/15 min)": self.load_average,
        }


def _span(values: list[Any]) -> tuple[Any, Any, Any] | None:
    values = [round(v, 1) if isinstance(v, float) else v for v in values if v is not None]
    return (values[0], values[-1], max(values)) if values else None


class Chaos:
    """The store, the server and (optionally) the proxy, and the faults that strike them."""

    def __init__(self, store: EmbeddedStore, proxy: FaultProxy | None, rng: random.Random, say: Callable) -> None:
        self.store, self.proxy, self.rng, self.say = store, proxy, rng, say
        self.server: harness.Server | None = None
        self.faults: Counter[str] = Counter()

    @property
    def kinds(self) -> tuple[str, ...]:
        return BASE_FAULTS + (PROXY_FAULTS if self.proxy is not None else ())

    async def strike(self, kind: str) -> None:
        """Injects one fault and returns once the service has what it needs to recover (it may still be
        answering 503 for a moment)."""
        self.faults[kind] += 1
        if kind == "store-kill":
            self.store.kill()
            await trio.sleep(self.rng.uniform(0.2, 3.0))
            self.store.spawn()  # from the main thread: the store is tied to the thread that starts it
            await trio.to_thread.run_sync(self.store.wait_ready)
        elif kind == "server-kill":
            assert self.server is not None
            supervisor = self.server.process.pid
            victim = self.rng.choice(procstat.children(supervisor))
            os.kill(victim, signal.SIGKILL)
            with trio.fail_after(60):  # the supervisor replaces it
                while len(kids := procstat.children(supervisor)) != 2 or victim in kids:
                    await trio.sleep(0.1)
        elif kind == "store-stop":
            assert self.store.process is not None
            self.store.process.send_signal(signal.SIGSTOP)
            try:
                await trio.sleep(self.rng.uniform(1.0, 4.0))
            finally:
                self.store.process.send_signal(signal.SIGCONT)
        elif kind == "link-latency":
            assert self.proxy is not None
            self.proxy.delay(self.rng.uniform(0.02, 0.1))
            try:
                await trio.sleep(self.rng.uniform(2.0, 6.0))
            finally:
                self.proxy.delay(0)
        elif kind == "link-cut":
            assert self.proxy is not None
            self.proxy.cut()
        else:
            raise ValueError(kind)

    async def run(self, until: float, gap: tuple[float, float]) -> None:
        """Faults one after another, ``gap`` seconds apart, each kind once per round, until ``until`` (trio time)
        and at least one whole round has struck (so that a short run meets every kind)."""
        round_: list[str] = []
        first_round_done = False
        while True:
            await trio.sleep(self.rng.uniform(*gap))
            if first_round_done and trio.current_time() >= until:
                return
            if not round_:
                round_ = list(self.kinds)
                self.rng.shuffle(round_)
            kind = round_.pop()
            first_round_done = first_round_done or not round_
            started = trio.current_time()
            await self.strike(kind)
            self.say(f"  fault {sum(self.faults.values())}: {kind} ({trio.current_time() - started:.1f} s)")


def sample(server: harness.Server, store: EmbeddedStore, t: float) -> Sample:
    pids = server.pids
    fds = 0
    for pid in pids:
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    used = clients = None
    if store.running:
        try:
            used = int(harness.redis_info(store.url, "memory")["used_memory"]) / 2**20
            clients = harness.redis_clients(store.url)
        except (OSError, KeyError, ValueError):
            pass
    return Sample(round(t, 1), procstat.rss_mb(pids), fds, used, clients)


async def _sample_forever(server: harness.Server, store: EmbeddedStore, start: float, samples: list[Sample],
                          say: Callable, every_say: float) -> None:  # fmt: skip
    said = 0.0
    while True:
        # A stopped store would hold the sampling connection: ask from a thread with its own timeout.
        s = await trio.to_thread.run_sync(sample, server, store, trio.current_time() - start, abandon_on_cancel=True)
        samples.append(s)
        if s.t - said >= every_say:
            said = s.t
            store_now = "down" if s.store_used_mb is None else f"{s.store_used_mb:.1f} MB, {s.store_clients} clients"
            say(f"  t={s.t:.0f}s server {s.server_rss_mb:.0f} MB, {s.server_fds} fds; store {store_now}")
        await trio.sleep(SAMPLE_EVERY)


async def run_soak(
    seconds: float,
    *,
    proxied: bool = False,
    seed: int | None = None,
    gap: tuple[float, float] = (5.0, 20.0),
    retention: int = 30,
    say: Callable[[str], object] = print,
) -> SoakReport:
    """Runs the load for ``seconds`` with faults ``gap`` seconds apart, drains, and returns the report."""
    harness.raise_fd_limit()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="starq-soak-") as workdir:
        store = start_store(os.path.join(workdir, "store"), port=free_port(), unix_socket=False, appendonly=True)
        try:
            async with trio.open_nursery() as nursery:
                proxy = None
                url = store.url
                if proxied:
                    host, port = url.split("//", 1)[1].rsplit(":", 1)
                    proxy = FaultProxy(host, int(port))
                    await nursery.start(proxy.serve)
                    url = proxy.url
                chaos = Chaos(store, proxy, rng, say)
                report = await _soak_with(chaos, url, seconds, gap, retention, say)
                nursery.cancel_scope.cancel()
            return report
        finally:
            store.stop()


async def _soak_with(chaos: Chaos, url: str, seconds: float, gap: tuple[float, float], retention: int,
                     say: Callable) -> SoakReport:  # fmt: skip
    # Started from a thread: the proxy, on this event loop, must forward the server's traffic meanwhile.
    server_cm = harness.starq_server(url, workers=2)
    server = await trio.to_thread.run_sync(server_cm.__enter__)
    try:
        chaos.server = server
        await trio.to_thread.run_sync(_create_queue, server.url, retention)
        load = Load(server.url, QUEUE, submitters=3, workers=4, batch=2, delay_every=5, block_ms=(0, 3000),
                    finish_tries=None, max_backlog=1000)  # fmt: skip
        samples: list[Sample] = []
        left = ""
        say(f"soak: {seconds:.0f} s of load on {server.url}, faults {', '.join(chaos.kinds)}")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run)
            start = trio.current_time()
            nursery.start_soon(_sample_forever, server, chaos.store, start, samples, say, max(30.0, seconds / 20))
            await chaos.run(start + seconds, gap)
            await trio.sleep_until(start + seconds)
            elapsed = trio.current_time() - start
            say("  load stops submitting; draining")
            load.stop_submitting()
            try:
                await load.drained(within=120)
            except NotDrained as exc:
                left = str(exc)  # the ledger is still drawn up: what did not drain shows as lost or unconfirmed
                say(f"  {left}")
            load.stop()
            samples.append(await trio.to_thread.run_sync(sample, server, chaos.store, trio.current_time() - start))
            nursery.cancel_scope.cancel()
        ledger = load.ledger()
        responses = {f"{op} {status}": n for (op, status), n in sorted(load.books.responses.items(), key=str)}
        return SoakReport(elapsed, chaos.proxy is not None, dict(chaos.faults), ledger, samples, responses,
                          procstat.load_average(), left)  # fmt: skip
    finally:
        await trio.to_thread.run_sync(server_cm.__exit__, None, None, None)


def _create_queue(url: str, retention: int) -> None:
    import httpx

    r = httpx.post(url + "/api/v1/queues", json={"name": QUEUE, **QUEUE_SETTINGS, "retention": retention},
                   headers={"X-API-Key": "dev-key"}, timeout=30)  # fmt: skip
    r.raise_for_status()


def main(minutes: float, proxied: bool, seed: int | None, out: str) -> int:
    import json
    from pathlib import Path

    started = time.time()
    report = trio.run(lambda: run_soak(minutes * 60, proxied=proxied, seed=seed))
    summary = report.summary()
    print()
    for key, value in summary.items():
        print(f"{key:55} {value}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    path = folder / f"soak-{'proxied-' if proxied else ''}{stamp}.json"
    record = {
        "summary": summary,
        "ledger": attrs.asdict(report.ledger),
        "responses": report.responses,
        "samples": [attrs.asdict(s) for s in report.samples],
    }
    path.write_text(json.dumps(record, indent=1, default=str))
    print(f"\nresults written to {path}")
    if not report.ok:
        print("EXACTLY-ONCE LEDGER FAILED", flush=True)
        return 1
    return 0
