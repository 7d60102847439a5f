"""The worker examples of ``examples/`` (Node.js, bash, Go), each run as a process against a real ``starq serve``.

Their toolchains are not optional: a missing one fails these tests with what to install (``.ci/run`` installs
them). Go's example is built once per session, offline (standard library only).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LANGUAGES = ["node", "bash", "go"]
KEY = {"X-API-Key": "dev-key"}
NODE_MINIMUM = (20, 3)  # AbortSignal.any


def require(*programs: str, install: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found on PATH; the worker examples need it: {install}")


class Examples:
    """The command that runs each example; Go's binary is built on first use, once per session."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.go_binary: Path | None = None
        self.go_error = ""

    def command(self, language: str) -> list[str]:
        if language == "node":
            require("node", install="Node.js 20.3 or later (Debian 12's nodejs is 18: use NodeSource's)")
            version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
            found = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
            if found < NODE_MINIMUM:
                pytest.fail(f"node is {version}; examples/node/worker.mjs needs Node.js 20.3 or later")
            return ["node", str(EXAMPLES / "node" / "worker.mjs")]
        if language == "bash":
            require("bash", "curl", "jq", install="apt-get install bash curl jq")
            return ["bash", str(EXAMPLES / "bash" / "worker.sh")]
        assert language == "go"
        return [str(self.build_go())]

    def build_go(self) -> Path:
        if self.go_binary is None and not self.go_error:
            require("go", install="apt-get install golang-go")
            binary = self.tmp / "go-worker"
            env = {
                **os.environ,
                "GOCACHE": str(self.tmp / "gocache"),
                "GOPATH": str(self.tmp / "gopath"),
                "GOFLAGS": "-mod=mod",
                "GOPROXY": "off",  # standard library only: nothing to download
                "CGO_ENABLED": "0",  # Go 1.19 needs a C compiler otherwise, and CI installs none
                "GOTOOLCHAIN": "local",  # a newer Go: never fetch another toolchain
            }
            built = subprocess.run(
                ["go", "build", "-o", str(binary), "."],
                cwd=EXAMPLES / "go",
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if built.returncode == 0:
                self.go_binary = binary
            else:
                self.go_error = f"go build of examples/go failed:\n{built.stdout}{built.stderr}"
        if self.go_error:
            pytest.fail(self.go_error)
        assert self.go_binary is not None
        return self.go_binary


@pytest.fixture(scope="session")
def examples(tmp_path_factory):
    return Examples(tmp_path_factory.mktemp("examples"))


def _default_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class WorkerProcess:
    """One example worker running, its output (stdout and stderr) in a file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path):
        self.log = log
        # In a process group of its own, so that the test can signal it with its children, and only them. With
        # SIGINT and SIGQUIT at their defaults, as a worker started from a terminal has them: a test run started in
        # the background by a shell without job control ignores both, and a shell cannot trap a signal it
        # started with ignored, so the bash example would not hear the Ctrl-C these tests send.
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=log.parent,
                start_new_session=True,
                preexec_fn=_default_stop_signals,  # noqa: PLW1509 - only signal(2) calls, before exec
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float, what: str) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the worker did not exit within {timeout} s {what}; it wrote:\n{self.output()}"
            ) from None

    def signal_group(self, sig: int) -> None:
        """Sends ``sig`` to the worker's whole process group, as Ctrl-C and systemd do. It is the harder case for
        the bash example, whose jobs run in child processes that must finish too."""
        os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def start_worker(examples, tmp_path):
    """Starts an example: ``start_worker(language, url, queue, **env)``; every one is killed after the test."""
    started: list[WorkerProcess] = []

    def start(language: str, url: str, queue: str | None, **env: str) -> WorkerProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("STARQ_")}
        full_env.update({"STARQ_URL": url, "STARQ_API_KEY": "dev-key", **env})
        if queue is not None:
            full_env["STARQ_QUEUE"] = queue
        worker = WorkerProcess(examples.command(language), full_env, tmp_path / f"{language}-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


# --- The API, plainly -----------------------------------------------------------------------------------------


def create_queue(url: str, name: str, **settings) -> None:
    r = httpx.post(f"{url}/api/v1/queues", json={"name": name, **settings}, headers=KEY, timeout=30)
    assert r.status_code == 201, r.text


def submit(url: str, queue: str, payloads: list[dict]) -> list[str]:
    jobs = [{"payload": p} for p in payloads]
    r = httpx.post(f"{url}/api/v1/queues/{queue}/jobs", json={"jobs": jobs}, headers=KEY, timeout=30)
    assert r.status_code == 201, r.text
    return [job["id"] for job in r.json()["jobs"]]


def get_job(url: str, queue: str, job_id: str) -> dict:
    r = httpx.get(f"{url}/api/v1/queues/{queue}/jobs/{job_id}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def events(job: dict) -> list[str]:
    return [e["event"] for e in job["history"]]


def wait_for(predicate, timeout: float, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout} s; the worker wrote:\n{worker.output()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- The tests ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_example_runs_every_job_and_exits_after_max_jobs(language, server, queue_name, start_worker):
    # A 2 s lease: the 3.5 s job survives only if the worker heart-beats; max_retries 0 dead-letters at once.
    create_queue(server.url, queue_name, claim_timeout=2, max_retries=0)
    payloads: list[dict] = [{"n": i} for i in range(20)] + [{"n": 99, "sleep_ms": 3500}, {"n": 7, "fail": "boom"}]
    ids = submit(server.url, queue_name, payloads)

    worker = start_worker(language, server.url, queue_name, STARQ_MAX_JOBS=str(len(payloads)))
    code = worker.wait(60, f"after STARQ_MAX_JOBS={len(payloads)} jobs")
    assert code == 0, worker.output()

    for payload, job_id in zip(payloads, ids):
        job = get_job(server.url, queue_name, job_id)
        if "fail" in payload:
            assert (job["status"], job["error"]) == ("failed", "boom"), (job, worker.output())
        else:
            expected = {"squared": payload["n"] ** 2, "worker": language}
            assert (job["status"], job["result"]) == ("completed", expected), (job, worker.output())
        assert job["retries"] == 0, (job, worker.output())  # no lease expired, nothing ran twice
        assert job["worker"].startswith(f"{language}-"), job
        assert events(job).count("claimed") == 1, job

    sleeper = get_job(server.url, queue_name, ids[20])
    assert "extended" in events(sleeper), (sleeper["history"], worker.output())
    assert events(sleeper).count("completed") == 1, sleeper["history"]
    info = httpx.get(f"{server.url}/api/v1/queues/{queue_name}", timeout=30).json()
    assert (info["completed"], info["failed"], info["pending"], info["claimed"]) == (21, 1, 0, 0), info


@pytest.mark.parametrize("language", LANGUAGES)
def test_sigterm_lets_the_job_in_hand_finish_then_exits_0(language, server, queue_name, start_worker):
    create_queue(server.url, queue_name, claim_timeout=2, max_retries=0)
    [sleeper] = submit(server.url, queue_name, [{"n": 5, "sleep_ms": 3500}])
    worker = start_worker(language, server.url, queue_name)
    wait_for(lambda: get_job(server.url, queue_name, sleeper)["status"] == "claimed", 20, "the job claimed", worker)
    time.sleep(0.5)

    worker.signal_group(signal.SIGTERM)
    [later] = submit(server.url, queue_name, [{"n": 6}])  # after the signal: the worker must not claim it
    code = worker.wait(20, "after SIGTERM")
    assert code == 0, worker.output()

    job = get_job(server.url, queue_name, sleeper)
    assert (job["status"], job["result"], job["retries"]) == ("completed", {"squared": 25, "worker": language}, 0), (
        job,
        worker.output(),
    )
    assert "extended" in events(job), job["history"]  # it heart-beat after the signal too (3.5 s > the 2 s lease)
    assert get_job(server.url, queue_name, later)["status"] == "pending", worker.output()


@pytest.mark.parametrize("language", LANGUAGES)
def test_waits_for_an_absent_server_then_a_stop_ends_its_long_poll_at_once(
    language, server_factory, queue_name, start_worker
):
    port = free_port()
    worker = start_worker(language, f"http://127.0.0.1:{port}", queue_name)
    time.sleep(2)
    assert worker.process.poll() is None, worker.output()
    retries = worker.output().count("retrying in")
    assert 2 <= retries <= 6, f"{retries} claims in 2 s: it should back off from 0.5 s\n{worker.output()}"

    server = server_factory("--port", str(port))
    create_queue(server.url, queue_name)
    [job_id] = submit(server.url, queue_name, [{"n": 4}])
    wait_for(lambda: get_job(server.url, queue_name, job_id)["status"] == "completed", 30, "the job completed", worker)
    assert get_job(server.url, queue_name, job_id)["result"] == {"squared": 16, "worker": language}

    time.sleep(0.5)  # now waiting in a long-poll (block_ms 30 s) on the empty queue
    worker.signal_group(signal.SIGINT)
    assert worker.wait(5, "after SIGINT while waiting in a claim") == 0, worker.output()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_wrong_key_or_no_queue_stops_it_with_a_clear_message(language, server, queue_name, start_worker):
    create_queue(server.url, queue_name)
    worker = start_worker(language, server.url, queue_name, STARQ_API_KEY="not-the-key")
    assert worker.wait(15, "with a wrong STARQ_API_KEY") != 0, worker.output()
    assert "401" in worker.output() and "STARQ_API_KEY" in worker.output(), worker.output()

    worker = start_worker(language, server.url, None)
    assert worker.wait(15, "without STARQ_QUEUE") != 0, worker.output()
    assert "STARQ_QUEUE is not set" in worker.output(), worker.output()
