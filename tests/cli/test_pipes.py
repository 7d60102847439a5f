"""A reader that stops early (``starq jobs Q | head -1``): the command ends quietly, as git and gh do."""

from __future__ import annotations

import signal
import subprocess

import httpx

from cli.helpers import KEY, starq_process

# What a shell shows for a process ended by SIGPIPE (128 + 13) and what subprocess reports for it. git re-raises
# SIGPIPE with its default action; an exit status of 0 would be quiet too.
QUIET = (0, 128 + signal.SIGPIPE, -signal.SIGPIPE)


def read_lines_then_close(*args: str, lines: int, timeout: float = 30) -> tuple[list[str], int, str]:
    """Runs ``starq ARGS`` with stdout to a pipe, reads ``lines`` lines, closes the pipe as ``head`` does, and
    returns (the lines, the exit status, everything written to stderr)."""
    proc = starq_process(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None  # both are pipes
    try:
        got = [stdout.readline() for _ in range(lines)]
        stdout.close()
        code = proc.wait(timeout=timeout)
        return got, code, stderr.read()
    finally:
        proc.kill()
        proc.wait()
        stderr.close()


def test_jobs_into_a_closed_pipe_ends_quietly(server, queue_name):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}) as http:
        assert http.post("/api/v1/queues", json={"name": queue_name}).status_code == 201
        # Far more than a pipe holds (64 KiB), so the command is still writing when the reader goes.
        for _ in range(3):
            batch = {"jobs": [{"payload": {"text": "x" * 50}} for _ in range(1000)]}
            assert http.post(f"/api/v1/queues/{queue_name}/jobs", json=batch).status_code == 201
    got, code, stderr = read_lines_then_close("-u", server.url, "jobs", queue_name, "-l", "3000", lines=1)
    assert got[0].split("\t")[:2] == ["id", "status"]
    assert stderr == "", stderr
    assert code in QUIET, code


def test_watch_into_a_closed_pipe_ends_quietly(server, queue_name):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}) as http:
        assert http.post("/api/v1/queues", json={"name": queue_name}).status_code == 201
    got, code, stderr = read_lines_then_close("-u", server.url, "watch", queue_name, "-i", "0.1", lines=2)
    assert got[0].startswith("queue\t") and got[1].startswith(queue_name + "\t")
    assert stderr == "", stderr
    assert code in QUIET, code


def test_watch_json_into_a_closed_pipe_ends_quietly(server, queue_name):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}) as http:
        assert http.post("/api/v1/queues", json={"name": queue_name}).status_code == 201
    got, code, stderr = read_lines_then_close("-u", server.url, "watch", "--json", "-i", "0.1", lines=1)
    assert got[0].startswith('{"at": ')
    assert stderr == "", stderr
    assert code in QUIET, code
