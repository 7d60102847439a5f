"""The blocking ``starq.worker_kit.sync.StarqClient``: the same methods as the async client (checked by
introspection, so a method added to one and not the other fails here), and used for real against a ``starq serve``
from plain threads, as a Django or Flask app would. (Plain test functions: no event loop runs in the test's thread.)"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, get_type_hints

import httpx
import pytest

from starq.worker_kit import QueueNotFound, StarqClient, StarqError
from starq.worker_kit.sync import BlockingIterator
from starq.worker_kit.sync import StarqClient as BlockingClient
from worker_kit.helpers import FAST_RETRY, KEY

# Public methods of the async client that the blocking one has under another name, or not at all (why: sync.py).
ASYNC_ONLY = {"aclose", "open_stream"}


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {name: member for name, member in inspect.getmembers(cls, callable) if not name.startswith("_")}


def test_every_async_method_has_a_blocking_twin_with_the_same_signature():
    async_methods = public_methods(StarqClient)
    blocking = public_methods(BlockingClient)
    twins = sorted(set(async_methods) - ASYNC_ONLY)
    assert len(twins) >= 40  # the introspection found the API, not nothing
    assert set(twins) - set(blocking) == set(), "methods without a blocking twin"
    assert set(blocking) - set(twins) == {"close"}, "blocking methods the async client lacks"
    for name in twins:
        async_method, twin = async_methods[name], blocking[name]
        assert getattr(twin, "__name__", "") == name, (name, twin)  # not some other method's twin
        assert inspect.signature(twin).parameters == inspect.signature(async_method).parameters, name
        assert inspect.getdoc(twin) == inspect.getdoc(async_method), name
        assert not inspect.iscoroutinefunction(twin), name
    # Every coroutine method is a coroutine method there, and the streams are streams.
    streams = {name for name in twins if not inspect.iscoroutinefunction(async_methods[name])}
    assert streams == {"iter_jobs", "events"}
    # The constructor too: the same parameters (names, kinds, defaults, annotations: ``**options`` is the same
    # ``Unpack[ClientOptions]``), with its own ``backend`` before the options.
    *positional, options = inspect.signature(StarqClient.__init__).parameters.values()
    init = inspect.signature(BlockingClient.__init__).parameters
    assert list(init.values()) == [*positional, init["backend"], options]
    assert get_type_hints(BlockingClient.__init__)["options"] == get_type_hints(StarqClient.__init__)["options"]


@pytest.fixture
def blocking(server):
    with BlockingClient(server.url, KEY, timeout=10, retry=FAST_RETRY) as client:
        yield client


def test_a_misspelled_keyword_is_refused_by_the_type_checker_and_at_run_time(blocking: BlockingClient):
    # As for the async client (test_client_options.py): each ``type: ignore`` must stay needed.
    with pytest.raises(TypeError, match=r"StarqClient.submit\(\) got an unexpected keyword argument 'unique_kye'"):
        blocking.submit("q", {}, unique_kye="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'timout'"):
        BlockingClient(blocking.url, timout=5)  # type: ignore[call-arg]


def test_a_job_through_the_blocking_client(blocking, queue_name):
    assert blocking.health()["status"] == "ok"
    info = blocking.create_queue(queue_name, max_retries=0, retry_delay=0, events=True)
    assert info.name == queue_name and blocking.get_queue(queue_name).pending == 0
    job = blocking.submit(queue_name, {"to": "ada@example.com"}, tags=["welcome"])
    assert blocking.get_job(queue_name, job.id).status == "pending"
    (claimed,) = blocking.claim(queue_name, block_ms=1000, worker="django")
    assert claimed.id == job.id and claimed.lease_id
    assert blocking.extend(queue_name, job.id, lease_id=claimed.lease_id)
    assert blocking.progress(queue_name, job.id, 0.5, lease_id=claimed.lease_id) == "claimed"
    assert blocking.complete(queue_name, job.id, {"sent": True}, lease_id=claimed.lease_id) == "completed"
    done = blocking.wait(queue_name, job.id, timeout=5)
    assert (done.status, done.result, done.progress) == ("completed", {"sent": True}, 0.5)

    other = blocking.submit(queue_name, {"to": "bob@example.com"})
    (claimed,) = blocking.claim(queue_name, block_ms=1000)
    assert blocking.fail(queue_name, other.id, "bounced", lease_id=claimed.lease_id).status == "failed"
    assert [j.id for j in blocking.iter_jobs(queue_name, limit=10)] == [other.id, job.id]
    assert blocking.list_jobs(queue_name, status="failed").jobs[0].error == "bounced"
    with blocking.events(queue_name, since=0) as events:
        kinds = [next(events).kind for _ in range(6)]
    assert kinds == ["submitted", "claimed", "progress", "completed", "submitted", "claimed"]
    assert isinstance(events, BlockingIterator)

    # Errors are the async client's classes.
    with pytest.raises(QueueNotFound):
        blocking.get_queue(queue_name + "-missing")


def parked_claims(url: str) -> float:
    """The server's ``starq_claims_waiting`` gauge: long-poll claims parked in it now."""
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("starq_claims_waiting"):
            return float(line.split()[-1])
    raise AssertionError("no starq_claims_waiting in /metrics")


def test_one_blocking_client_serves_many_threads(server, blocking, queue_name):
    """A web server's threads share one client: their calls run side by side in its loop. Each thread parks a
    long-poll claim; all are parked on the server at once (so none waits for another's call to end), and all are
    answered when the jobs arrive."""
    blocking.create_queue(queue_name)
    threads = 8
    with ThreadPoolExecutor(threads) as pool:
        claims = [pool.submit(blocking.claim, queue_name, block_ms=30_000) for _ in range(threads)]
        deadline = time.monotonic() + 25
        while parked_claims(server.url) < threads:
            assert time.monotonic() < deadline, "the claims were not all parked at once"
            time.sleep(0.02)
        blocking.submit_many(queue_name, [{"payload": {"n": n}} for n in range(threads)])
        got = [c.result(timeout=30) for c in claims]
    assert sorted(job.payload["n"] for jobs in got for job in jobs) == list(range(threads))


def test_close_ends_the_thread_and_refuses_later_calls(server):
    before = {t.name for t in threading.enumerate()}
    client = BlockingClient(server.url, KEY)
    (started,) = {t.name for t in threading.enumerate()} - before
    assert started.startswith("starq-client-")
    assert client.health()["status"] == "ok"
    client.close()
    client.close()  # twice is harmless
    assert started not in {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="closed"):
        client.health()


def test_the_trio_backend_works_too(server, queue_name):
    with BlockingClient(server.url, KEY, backend="trio") as client:
        client.create_queue(queue_name)
        job = client.submit(queue_name, {"n": 1})
        assert client.get_job(queue_name, job.id).payload == {"n": 1}


def test_an_unreachable_server_raises_the_async_clients_error(free_port):
    with (
        BlockingClient(f"http://127.0.0.1:{free_port}", KEY, retry=FAST_RETRY) as client,
        pytest.raises(StarqError, match="cannot reach"),
    ):
        client.health()
