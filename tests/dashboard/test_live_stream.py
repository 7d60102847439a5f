"""The live stream (server-sent events) over plain HTTP: what it sends, what it costs when nothing changes,
and that it ends promptly when the client leaves, the server shuts down, or its queue is deleted."""

from __future__ import annotations

import json
import signal
import uuid

import httpx
import pytest

from dashboard.helpers import KEY, wait_for
from serverproc import start_server

HEADERS = {"X-API-Key": KEY}


def events(response):
    """(event, data) pairs from an SSE response, as they arrive; comments and the retry field are skipped."""
    event, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "":
            if data:
                yield event, json.loads(data)
            event, data = "message", ""


def numbered(response):
    """(event, id, data) triples from an SSE response: ``events`` with each event's ``id`` (None without)."""
    event, number, data = "message", None, ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            number = int(line[3:].strip())
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "":
            if data:
                yield event, number, json.loads(data)
            event, number, data = "message", None, ""


def streams(url: str) -> dict:
    return httpx.get(url + "/dashboard/streams", headers=HEADERS).json()


@pytest.fixture(scope="module")
def stream_server(tmp_path_factory):
    """One server for this module's non-destructive tests (no browser uses it, so its stream counters move
    only with these tests, which run one at a time)."""
    server = start_server("--data-dir", str(tmp_path_factory.mktemp("stream-store")))
    yield server
    server.stop()


def new_queue(server) -> str:
    queue = f"live-{uuid.uuid4().hex[:8]}"
    httpx.post(server.url + "/api/v1/queues", json={"name": queue}, headers=HEADERS).raise_for_status()
    return queue


@pytest.fixture
def live(stream_server):
    """The module's server, no stream left open by an earlier test, and a fresh queue."""
    wait_for(lambda: streams(stream_server.url)["open"] == 0)
    return stream_server, new_queue(stream_server)


def open_stream(client: httpx.Client, url: str, **params):
    return client.stream("GET", url + "/dashboard/events", params=params, timeout=httpx.Timeout(10.0))


def test_a_snapshot_first_then_one_event_per_change_and_none_while_idle(live):
    server, queue = live
    with httpx.Client() as client, open_stream(client, server.url, view="queue", queue=queue) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = events(response)
        kind, first = next(received)
        assert kind == "snapshot"
        assert first["data"]["queue"]["name"] == queue
        assert first["data"]["queue"]["counts"]["pending"] == 0
        # Idle: the stream keeps looking (one snapshot a second) but sends nothing.
        before = streams(server.url)
        wait_for(lambda: streams(server.url)["snapshots_built"] >= before["snapshots_built"] + 3)
        assert streams(server.url)["events"] == before["events"]
        # A change is sent at the next look.
        httpx.post(
            f"{server.url}/api/v1/queues/{queue}/jobs", json={"payload": {"n": 1}}, headers=HEADERS
        ).raise_for_status()
        kind, second = next(received)
        assert kind == "snapshot"
        assert second["data"]["queue"]["counts"]["pending"] == 1
        assert [row["payload"] for row in second["data"]["jobs"]["rows"]] == ['{"n":1}']


def test_the_stream_ends_when_the_client_goes_away(live):
    server, queue = live
    opened = streams(server.url)["opened"]
    with httpx.Client() as client:
        for view in ({"view": "overview"}, {"view": "queue", "queue": queue}):
            with open_stream(client, server.url, **view) as response:
                received = events(response)
                assert next(received)[0] == "snapshot"
                assert streams(server.url)["open"] == 1, (view, streams(server.url))
            wait_for(lambda: streams(server.url)["open"] == 0)
    assert streams(server.url)["opened"] == opened + 2


def test_the_streams_say_bye_and_end_when_the_server_shuts_down(server_factory):
    server = server_factory()
    queue = new_queue(server)
    httpx.patch(f"{server.url}/api/v1/queues/{queue}", json={"events": True}, headers=HEADERS).raise_for_status()
    with (
        httpx.Client() as client,
        open_stream(client, server.url, view="queue", queue=queue) as response,
        client.stream("GET", server.url + "/dashboard/job-events", params={"queue": queue}) as log,
    ):
        received = events(response)
        assert next(received)[0] == "snapshot"
        wait_for(lambda: streams(server.url)["open"] == 2)
        server.process.send_signal(signal.SIGTERM)
        kind, data = next(received)
        assert kind == "bye"
        assert list(received) == []  # and then the response ends
        assert list(events(log)) == [("bye", {"reason": "the server is shutting down"})]
    assert server.process.wait(20) == 0


def test_the_stream_says_gone_when_its_queue_is_deleted(live):
    server, queue = live
    with httpx.Client() as client, open_stream(client, server.url, view="queue", queue=queue) as response:
        received = events(response)
        assert next(received)[0] == "snapshot"
        httpx.delete(f"{server.url}/api/v1/queues/{queue}", headers=HEADERS).raise_for_status()
        kind, data = next(received)
        assert kind == "gone"
        assert "not found" in data["detail"]
        assert list(received) == []


def test_the_event_log_starts_with_recent_events_and_resumes_after_the_last_one_seen(live):
    server, queue = live
    httpx.patch(f"{server.url}/api/v1/queues/{queue}", json={"events": True}, headers=HEADERS).raise_for_status()
    submit = f"{server.url}/api/v1/queues/{queue}/jobs"
    httpx.post(submit, json={"jobs": [{"payload": {"n": n}} for n in range(60)]}, headers=HEADERS)
    url = server.url + "/dashboard/job-events"
    with httpx.Client() as client:
        with client.stream("GET", url, params={"queue": queue}, timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            received = numbered(response)
            first = [next(received) for _ in range(50)]  # the last 50 of the log: events 11 to 60
            assert [n for _, n, _ in first] == list(range(11, 61))
            kind, number, data = first[0]
            assert (kind, data["event"], data["status"], data["queue"]) == ("job", "submitted", "pending", queue)
            (job,) = httpx.post(submit, json={"payload": {"n": 60}}, headers=HEADERS).json()["jobs"]
            kind, number, data = next(received)
            assert (kind, number, data["job_id"], data["event"]) == ("job", 61, job["id"], "submitted")
        # After a break the page sends the last id it has, and gets what followed.
        headers = {"Last-Event-ID": "59"}
        with client.stream("GET", url, params={"queue": queue}, headers=headers, timeout=10) as response:
            received = numbered(response)
            assert [next(received)[1] for _ in range(2)] == [60, 61]
            httpx.delete(f"{server.url}/api/v1/queues/{queue}", headers=HEADERS).raise_for_status()
            kind, _, data = next(received)
            assert kind == "gone" and "not found" in data["detail"]
            assert list(received) == []
    bad = httpx.get(url, params={"queue": queue}, headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"
    assert httpx.get(url, params={"queue": "NO SUCH"}).status_code == 404


def test_bad_stream_requests_get_json_errors(live):
    server, queue = live
    bad = [
        ({"view": "nope"}, 422),
        ({"view": "queue", "queue": "NO SUCH"}, 404),
        ({"view": "queue", "queue": queue, "status": "lost"}, 422),
        ({"view": "job", "queue": queue, "job": "a/b"}, 404),
    ]
    for params, status in bad:
        response = httpx.get(server.url + "/dashboard/events", params=params)
        assert response.status_code == status, params
        assert set(response.json()) == {"detail", "error"}
    # A job that does not exist (yet) is simply gone.
    with (
        httpx.Client() as client,
        open_stream(
            client, server.url, view="job", queue=queue, job="01a00000-0000-7000-8000-000000000000"
        ) as response,
    ):
        assert next(events(response))[0] == "gone"


def test_with_read_auth_nothing_is_shown_without_a_key(server_factory):
    server = server_factory(env={"STARQ_READ_AUTH": "1"})
    queue = f"secret-{uuid.uuid4().hex[:8]}"
    httpx.post(server.url + "/api/v1/queues", json={"name": queue}, headers=HEADERS).raise_for_status()
    for path in ("/", f"/queues/{queue}"):
        page = httpx.get(server.url + path)
        assert page.status_code == 200
        assert "initial-snapshot" not in page.text
        assert 'data-read-auth="1"' in page.text
    overview = httpx.get(server.url + "/").text
    assert queue not in overview
    for path in ("/dashboard/events", "/dashboard/streams", f"/dashboard/job-events?queue={queue}"):
        refused = httpx.get(server.url + path)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
        assert httpx.get(server.url + path, headers={"X-API-Key": "wrong"}).status_code == 401
    with httpx.Client() as client, client.stream("GET", server.url + "/dashboard/events", headers=HEADERS) as response:
        kind, data = next(events(response))
        assert kind == "snapshot"
        assert queue in [q["name"] for q in data["data"]["queues"]]


def test_the_key_check_answers_without_an_error_status(live):
    server, _ = live
    assert httpx.get(server.url + "/dashboard/key", headers=HEADERS).json() == {"valid": True}
    assert httpx.get(server.url + "/dashboard/key", headers={"X-API-Key": "nope"}).json() == {"valid": False}
    assert httpx.get(server.url + "/dashboard/key").json() == {"valid": False}


def test_the_stream_reports_an_unreachable_store_and_recovers(server_factory, tmp_path):
    from starq.server.embedded import start_store

    store = start_store(tmp_path / "store", unix_socket=False, appendonly=True)
    port = int(store.url.rsplit(":", 1)[1])
    try:
        server = server_factory("--redis-url", store.url, redis=False)
        queue = new_queue(server)
        with httpx.Client() as client, open_stream(client, server.url, view="overview") as response:
            received = events(response)
            kind, data = next(received)
            assert [q["name"] for q in data["data"]["queues"]] == [queue]
            store.stop()
            kind, data = next(received)
            assert kind == "trouble"
            assert data["error"] == "store_unavailable"
            store = start_store(tmp_path / "store", port=port, appendonly=True)
            kind, data = next(received)
            assert kind == "snapshot"
            assert [q["name"] for q in data["data"]["queues"]] == [queue]
    finally:
        store.stop()
