"""Workflows against real ``starq serve`` processes: the event stream (live, resumed, dropped, keep-alives, one
subscription for many readers), and a batch's callback exactly once when its last jobs finish together through
two processes."""

from __future__ import annotations

import json
import queue as queues
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from e2e.helpers import KEY, api, create_queue, wait_for


def sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """Server-sent events as {"id"?, "event"?, "data"?, "comment"?} per blank-line-terminated block."""
    block: dict = {}
    for line in lines:
        if line == "":
            if block:
                yield block
            block = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            block[name] = value.removeprefix(" ")


class Reader:
    """Reads a queue's event stream in a thread, into ``got``."""

    def __init__(self, server, queue: str, headers: dict | None = None, params: dict | None = None) -> None:
        self.got: queues.Queue[dict] = queues.Queue()
        self.response_status = 0
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server, queue, headers or {}, params or {}))
        self._thread.start()
        assert self._opened.wait(10), "the stream did not open"

    def _run(self, server, queue: str, headers: dict, params: dict) -> None:
        try:
            with httpx.stream("GET", f"{api(server)}/{queue}/events", headers=headers, params=params,
                              timeout=httpx.Timeout(30, read=60)) as r:  # fmt: skip
                self.response_status = r.status_code
                self.content_type = r.headers.get("content-type", "")
                self._opened.set()
                for event in sse_events(r.iter_lines()):
                    if self._stop.is_set():
                        return  # at the next event or keep-alive (servers here send one twice a second)
                    self.got.put(event)
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise

    def events(self, n: int, timeout: float = 10) -> list[dict]:
        """The next n events (comments skipped)."""
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            item = self.got.get(timeout=max(0.01, deadline - time.monotonic()))
            if "comment" not in item:
                out.append(item)
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def submit(server, queue: str, body: dict) -> dict:
    r = httpx.post(f"{api(server)}/{queue}/jobs", json=body, headers=KEY, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def claim(server, queue: str, count: int = 1) -> list[dict]:
    r = httpx.post(f"{api(server)}/{queue}/jobs/claim", json={"count": count}, headers=KEY, timeout=30)
    return r.json()["jobs"]


def complete(server, queue: str, job: dict) -> None:
    r = httpx.put(f"{api(server)}/{queue}/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]},
                  headers=KEY, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text


def wait_following(server, readers: int) -> None:
    """Waits until the server follows the log for ``readers`` streams (its gauge counts them)."""
    wait_for(lambda: f"starq_event_readers {readers}.0" in httpx.get(f"{server.url}/metrics", timeout=10).text,
             what=f"{readers} readers")  # fmt: skip


@pytest.fixture
def server(server_factory):
    """A server whose streams send keep-alives twice a second (a Reader closes at the next one)."""
    return server_factory("--events-keepalive", "0.5")


def test_a_stream_carries_live_events_only_from_when_it_connects(server, queue_name):
    create_queue(server, queue_name, events=True)
    submit(server, queue_name, {"payload": {"before": True}})
    reader = Reader(server, queue_name)
    try:
        assert reader.response_status == 200 and reader.content_type.startswith("text/event-stream")
        # At once: "from now" is where the log was when the request arrived, whenever the reader joins the feed.
        (job,) = submit(server, queue_name, {"payload": {"after": True}})["jobs"]
        (claimed,) = claim(server, queue_name, 1)  # the older job, submitted before connecting
        first, second = reader.events(2)
        assert first["event"] == "submitted" and json.loads(first["data"])["job_id"] == job["id"]
        data = json.loads(second["data"])
        assert second["event"] == "claimed" and data["job_id"] == claimed["id"] and data["status"] == "claimed"
        assert set(data) >= {"job_id", "status", "at", "queue"}
        assert int(second["id"]) == int(first["id"]) + 1
    finally:
        reader.close()


def test_last_event_id_resumes_and_zero_replays_the_log(server, queue_name):
    create_queue(server, queue_name, events=True)
    jobs = submit(server, queue_name, {"jobs": [{"payload": {"i": i}} for i in range(5)]})["jobs"]
    everything = Reader(server, queue_name, params={"since": 0})
    resumed = Reader(server, queue_name, headers={"Last-Event-ID": "3"})
    try:
        assert [json.loads(e["data"])["job_id"] for e in everything.events(5)] == [j["id"] for j in jobs]
        assert [e["id"] for e in resumed.events(2)] == ["4", "5"]
        (job,) = claim(server, queue_name)
        assert resumed.events(1)[0]["event"] == "claimed" and everything.events(1)[0]["id"] == "6"
        assert job["id"] == jobs[0]["id"]
    finally:
        everything.close()
        resumed.close()


def test_a_reader_behind_the_cap_is_told_events_were_dropped(server, queue_name):
    create_queue(server, queue_name, events=True, events_max=100)
    for _ in range(4):
        submit(server, queue_name, {"jobs": [{"payload": {"i": i}} for i in range(100)]})
    reader = Reader(server, queue_name, headers={"Last-Event-ID": "10"})
    try:
        dropped, first = reader.events(2)
        assert dropped["event"] == "dropped" and "id" not in dropped
        info = json.loads(dropped["data"])
        assert info["after"] == 10 and info["oldest"] == int(first["id"]) > 11
    finally:
        reader.close()


def test_streams_send_keep_alive_comments_and_bad_requests_get_json_errors(server, queue_name):
    create_queue(server, queue_name, events=True)
    reader = Reader(server, queue_name)
    try:
        comments: list[str | None] = []
        deadline = time.monotonic() + 5
        while len(comments) < 3 and time.monotonic() < deadline:
            item = reader.got.get(timeout=5)
            comments.append(item.get("comment"))
        assert comments[1:] == ["keep-alive", "keep-alive"]
    finally:
        reader.close()
    r = httpx.get(f"{api(server)}/{queue_name}/events", headers={"Last-Event-ID": "x"}, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = httpx.get(f"{api(server)}/no-such-queue/events", timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "queue_not_found"


def test_many_readers_share_one_subscription(server, queue_name):
    create_queue(server, queue_name, events=True)
    readers = [Reader(server, queue_name) for _ in range(20)]
    try:
        # One pub/sub connection per process, whatever the readers: the store's count of subscribers to the
        # events channel is the number of server processes (this one and any others sharing the store).
        wait_following(server, 20)
        submit(server, queue_name, {"payload": {"x": 1}})
        for reader in readers:
            assert reader.events(1)[0]["event"] == "submitted"
    finally:
        for reader in readers:
            reader.close()


def test_a_callback_runs_once_when_the_last_jobs_finish_together_in_two_processes(server_factory, queue_name):
    a, b = server_factory(), server_factory()
    create_queue(a, queue_name)
    for round_ in range(5):
        body = submit(a, queue_name, {"jobs": [{"payload": {"i": i}} for i in range(20)],
                                      "batch": {"callback": {"payload": {"round": round_}}}})  # fmt: skip
        jobs = claim(a, queue_name, 20)
        assert len(jobs) == 20
        barrier = threading.Barrier(2)

        def finish(server, half: list[dict], barrier: threading.Barrier = barrier) -> None:
            with httpx.Client(headers=KEY, timeout=30) as client:
                barrier.wait()
                outcomes = [{"id": j["id"], "lease_id": j["lease_id"]} for j in half]
                r = client.post(f"{api(server)}/{queue_name}/jobs/ack", json={"complete": outcomes})
                assert r.status_code == 200, r.text

        threads = [threading.Thread(target=finish, args=(s, jobs[k::2])) for k, s in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        batch = httpx.get(f"{api(b)}/{queue_name}/batches/{body['batch_id']}", timeout=10).json()
        assert batch["finished"] and batch["completed"] == 20
        callbacks = claim(b, queue_name, 20)
        assert len(callbacks) == 1 and callbacks[0]["id"] == batch["callback_job_id"]
        assert callbacks[0]["payload"]["batch"]["total"] == 20 and callbacks[0]["payload"]["round"] == round_
        complete(b, queue_name, callbacks[0])


def test_a_waiter_on_one_process_hears_a_completion_through_another(server_factory, queue_name):
    a, b = server_factory(), server_factory()
    create_queue(a, queue_name)
    (job,) = submit(a, queue_name, {"payload": {"x": 1}})["jobs"]
    answer: list[dict] = []
    waiter = threading.Thread(
        target=lambda: answer.append(
            httpx.get(f"{api(a)}/{queue_name}/jobs/{job['id']}", params={"wait_ms": 30000}, timeout=40).json()
        )
    )
    waiter.start()
    wait_for(lambda: "starq_outcome_waiters 1.0" in httpx.get(f"{a.url}/metrics", timeout=10).text)
    started = time.monotonic()
    (claimed,) = claim(b, queue_name)
    complete(b, queue_name, claimed)
    waiter.join(40)
    assert answer[0]["status"] == "completed" and time.monotonic() - started < 10
