"""``starq worker`` as a real process: handlers from a module, SIGTERM with jobs in flight, a second signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import trio

from cli.helpers import KEY, starq_process

HANDLERS = textwrap.dedent("""
    import time
    import trio
    from starq.worker_kit import Permanent

    async def sleepy(job):
        await trio.sleep(job.payload["sleep"])
        return {"slept": job.payload["sleep"]}

    def blocking(job):
        time.sleep(job.payload["sleep"])
        return "done in a thread"

    async def picky(job):
        raise Permanent("never")
""")


def write_handlers(tmp_path) -> None:
    (tmp_path / "handlers.py").write_text(HANDLERS)


def start_worker(server, tmp_path, queue: str, handler: str, *extra: str) -> subprocess.Popen[str]:
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (the process owns it)
    return starq_process(
        "-u",
        server.url,
        "-k",
        KEY,
        "worker",
        handler,
        "-q",
        queue,
        "--block-ms",
        "1000",
        *extra,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=log,
    )


async def wait_counts(starq, queue: str, timeout: float = 20, **expected: int) -> None:
    with trio.move_on_after(timeout):
        while True:
            info = (await starq("info", queue, "--json")).json()
            if all(info[k] == v for k, v in expected.items()):
                return
            await trio.sleep(0.1)
    raise AssertionError(f"counts never reached {expected}: {info}")


async def submit(starq, queue: str, payloads: list[dict]) -> None:
    ran = await starq("submit", "-", "-q", queue, input="".join(json.dumps(p) + "\n" for p in payloads))
    assert ran.code == 0, ran.stderr


async def test_sigterm_finishes_fast_jobs_and_returns_the_rest(starq, server, make_queue, queue_name, tmp_path):
    write_handlers(tmp_path)
    await make_queue("--max-retries", "3")
    await submit(starq, queue_name, [{"sleep": 0.2}, {"sleep": 0.2}, {"sleep": 60}, {"sleep": 60}])
    proc = start_worker(server, tmp_path, queue_name, "handlers:sleepy", "-c", "4", "--grace", "1", "--json")
    try:
        await wait_counts(starq, queue_name, completed=2, claimed=2)
        proc.send_signal(signal.SIGTERM)
        out, _ = await trio.to_thread.run_sync(lambda: proc.communicate(timeout=15))
    finally:
        proc.kill()
    assert proc.returncode == 0, (tmp_path / "worker.log").read_text()
    stats = json.loads(out)
    assert {k: stats[k] for k in ("graceful", "completed", "interrupted", "retried", "lost", "cancelled")} == {
        "graceful": True,
        "completed": 2,
        "interrupted": 2,
        "retried": 0,  # given back with release: no attempt counted
        "lost": 0,
        "cancelled": 0,
    }
    info = (await starq("info", queue_name, "--json")).json()
    assert (info["completed"], info["claimed"], info["pending"]) == (2, 0, 2)  # none lost, none stranded
    pending = (await starq("jobs", queue_name, "-s", "pending", "--json")).json()["jobs"]
    assert [j["retries"] for j in pending] == [0, 0]
    log = (tmp_path / "worker.log").read_text()
    assert "SIGTERM: finishing running jobs" in log and "grace period over" in log


async def test_second_signal_exits_at_once(starq, server, make_queue, queue_name, tmp_path):
    write_handlers(tmp_path)
    await make_queue()
    await submit(starq, queue_name, [{"sleep": 60}])
    proc = start_worker(server, tmp_path, queue_name, "handlers:blocking", "--grace", "60")
    try:
        await wait_counts(starq, queue_name, claimed=1)
        proc.send_signal(signal.SIGINT)
        await trio.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        await trio.to_thread.run_sync(lambda: proc.wait(timeout=10))  # not the 60 s grace, nor the 60 s job
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "second SIGINT: exiting now" in (tmp_path / "worker.log").read_text()


async def test_sync_handler_and_permanent(starq, server, make_queue, queue_name, tmp_path):
    write_handlers(tmp_path)
    await make_queue("--max-retries", "5")
    await submit(starq, queue_name, [{"sleep": 0}])
    proc = start_worker(server, tmp_path, queue_name, "handlers:blocking")
    try:
        await wait_counts(starq, queue_name, completed=1)
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(lambda: proc.wait(timeout=15))
    job = (await starq("jobs", queue_name, "--json")).json()["jobs"][0]
    assert job["result"] == "done in a thread"

    await submit(starq, queue_name, [{"sleep": 1}])
    proc = start_worker(server, tmp_path, queue_name, "handlers:picky")
    try:
        await wait_counts(starq, queue_name, failed=1)
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(lambda: proc.wait(timeout=15))
    assert proc.returncode == 0


async def test_bad_handler_specs(starq, make_queue, queue_name, tmp_path, monkeypatch):
    write_handlers(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader puts the directory first on sys.path
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    for spec, message in [
        ("handlers", "module:function"),
        ("nosuchmodule:f", "cannot import"),
        ("handlers:missing", "no attribute"),
        ("handlers:HANDLERS_NOT_HERE", "no attribute"),
    ]:
        ran = await starq("worker", spec, "-q", queue_name)
        assert ran.code == 2 and message in ran.stderr, (spec, ran.stderr)
