"""The copy-paste examples of docs/workers.md (and docs/workflows.md's pipeline) run as printed, against a real
server (the client snippets inside an ``async def`` that gets the client, on the test's own queues)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import trio

from worker_kit.helpers import KEY, wait_for

DOCS = Path(__file__).parents[2] / "docs" / "workers.md"
WORKFLOWS = Path(__file__).parents[2] / "docs" / "workflows.md"


def example(name: str, docs: Path = DOCS) -> str:
    found = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", docs.read_text(), re.S)
    assert found, name
    return found.group(1)


async def run_until(proc: subprocess.Popen, predicate, tmp_path: Path) -> None:
    try:
        await wait_for(predicate, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(lambda: proc.wait(timeout=20))


async def test_requests_worker(server, client, make_queue, queue_name, tmp_path):
    await make_queue()
    (tmp_path / "worker.py").write_text(example("requests-worker"))
    await client.submit_many(queue_name, [{"payload": {"to": f"u{i}@example.com"}} for i in range(5)])
    await client.submit(queue_name, {"no_to": True})  # handle() raises KeyError: failed with a traceback
    env = {**os.environ, "STARQ_URL": server.url, "STARQ_QUEUE": queue_name, "STARQ_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "worker.py"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)

    async def settled() -> bool:
        info = await client.get_queue(queue_name)
        return info.completed == 5 and info.failed == 1

    await run_until(proc, settled, tmp_path)
    results = sorted([j.result["sent_to"] async for j in client.iter_jobs(queue_name, status="completed")])
    assert results == [f"u{i}@example.com" for i in range(5)]
    (dead,) = [j async for j in client.iter_jobs(queue_name, status="failed")]
    assert dead.error.startswith("KeyError('to')") and "Traceback" in dead.error


async def test_worker_kit_handler(server, client, make_queue, queue_name, tmp_path):
    await make_queue(max_retries=3)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "tasks.py").write_text(example("worker-kit-handler"))
    ok = await client.submit(queue_name, {"to": "ada@example.com"})
    grey = await client.submit(queue_name, {"to": "bob@example.com", "greylisted": True})
    bad = await client.submit(queue_name, {"to": "nobody"})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "starq.cli",
            "-u",
            server.url,
            "-k",
            KEY,
            "worker",
            "app.tasks:send_email",
            "-q",
            queue_name,
            "-c",
            "4",
            "--block-ms",
            "1000",
        ],
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
    )

    async def settled() -> bool:
        info = await client.get_queue(queue_name)
        return info.completed == 2 and info.failed == 1

    await run_until(proc, settled, tmp_path)
    assert proc.returncode == 0
    assert (await client.get_job(queue_name, ok.id)).result == {"sent_to": "ada@example.com"}
    grey_done = await client.get_job(queue_name, grey.id)
    assert (grey_done.retries, grey_done.error) == (1, "greylisted, try later")
    bad_done = await client.get_job(queue_name, bad.id)
    assert (bad_done.retries, bad_done.error.splitlines()[0]) == (0, "Permanent: not an address: 'nobody'")


async def test_client_snippets(client, make_queue, queue_name):
    queues = {"emails": queue_name, "reports": queue_name + "-reports"}
    for name in queues.values():
        await make_queue(name)
    code = "\n".join(example(name) for name in ("client-job-options", "client-flow-control", "client-schedules"))
    for shown, used in queues.items():
        code = code.replace(f'"{shown}"', f'"{used}"')
    namespace: dict = {}
    exec("async def snippets(client):\n" + textwrap.indent(code, "    "), namespace)
    await namespace["snippets"](client)
    (job,) = [j async for j in client.iter_jobs(queue_name, tag="onboarding")]
    assert (job.key, job.unique_key, job.timeout, job.max_retries) == ("account-42", "welcome:ada", 120, 5)
    info = await client.get_queue(queue_name)
    assert (info.rate_limit, info.key_concurrency) == (None, 1)
    (nightly,) = await client.list_schedules(queues["reports"])
    assert (nightly.cron, nightly.timeout, nightly.paused) == ("30 2 * * *", None, True)
    assert await client.list_schedules(queue_name) == []


async def test_client_workflows_snippet(client, make_queue, queue_name, capsys):
    await make_queue(events=True)
    code = example("client-workflows").replace('"media"', f'"{queue_name}"')
    namespace: dict = {}
    exec("async def snippet(client):\n" + textwrap.indent(code, "    "), namespace)
    with trio.fail_after(20):
        await namespace["snippet"](client)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "waiting" and printed[1].startswith("3 3 ")  # the batch's total and pending, its callback
    assert printed[2] == "pending False"
    events = [line.split() for line in printed[3:]]
    assert [e[1] for e in events] == ["submitted"] * 4 and [e[0] for e in events] == ["1", "2", "3", "4"]
    assert [e[3] for e in events] == ["pending", "waiting", "waiting", "waiting"]


async def _event_readers(server) -> float:
    async with httpx.AsyncClient(timeout=30) as http:
        metrics = (await http.get(f"{server.url}/metrics")).text
    found = re.search(r"^starq_event_readers (\S+)$", metrics, re.M)
    assert found, metrics
    return float(found.group(1))


async def test_the_pipeline_of_workflows_md(server, client, make_queue, queue_name, capsys):
    await make_queue(events=True)
    namespace: dict = {}
    exec(example("workflow-python", WORKFLOWS).replace('"media"', f'"{queue_name}"'), namespace)
    worker = namespace["Worker"](client, queue_name, namespace["handle"], block_ms=1000)
    readers = await _event_readers(server)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        nursery.start_soon(namespace["follow"], client)

        async def follower_connected() -> bool:  # it streams the events from then on: produce no sooner
            return await _event_readers(server) > readers

        await wait_for(follower_connected)
        with trio.fail_after(30):
            await namespace["produce"](client)
        await wait_for(lambda: _callback_done(client, queue_name))
        printed: list[str] = []

        async def follower_saw_every_completion() -> bool:
            # The queue counts the callback's completion before its event reaches the follower's stream.
            printed.extend(capsys.readouterr().out.splitlines())
            return [line.split()[1] for line in printed].count("completed") >= 5

        await wait_for(follower_saw_every_completion)
        worker.stop()
        nursery.cancel_scope.cancel()
    printed.extend(capsys.readouterr().out.splitlines())
    assert "completed {'done': 'publish'}" in printed
    kinds = [line.split()[1] for line in printed if line != "completed {'done': 'publish'}"]
    assert kinds.count("progress") == 10 and kinds.count("completed") == 5  # four steps and the callback
    assert kinds.index("pending") > kinds.index("completed")  # resize and thumbnail released by fetch's completion


async def _callback_done(client, queue: str) -> bool:
    info = await client.get_queue(queue)
    return info.completed == 5


def test_the_blocking_client_snippet(server, queue_name, capsys):
    """docs/workers.md's blocking-client example, run as printed in a plain function (no event loop here)."""
    from starq.worker_kit.sync import StarqClient as BlockingClient

    with BlockingClient(server.url, KEY) as setup:
        setup.create_queue(queue_name)
    code = example("sync-client").replace('"emails"', f'"{queue_name}"').replace("http://localhost:8000", server.url)
    exec(code, {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and printed[0].startswith("{'job': ") and printed[0].endswith("'status': 'pending'}")
