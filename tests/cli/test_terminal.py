"""What people see: tables and a progress bar on a terminal, the delete and purge questions, help, shell
completion."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from cli.helpers import KEY

STARQ = str(Path(sys.executable).parent / "starq")


def run_in_terminal(*args: str, answer: bytes = b"", timeout: float = 30) -> tuple[int, str]:
    """Runs ``starq ARGS`` with a pseudo-terminal as stdin, stdout and stderr; returns (status, screen text)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "starq.cli", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer and b"[y/N]" in screen:  # it asked: answer once
            os.write(leader, answer)
            answer = b""
        if not select.select([leader], [], [], 0.1)[0]:
            continue
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    return proc.wait(timeout=10), screen.decode(errors="replace")


async def test_tables_on_a_terminal(starq, server, make_queue, queue_name):
    await make_queue()
    code, screen = run_in_terminal("-u", server.url, "queues")
    assert code == 0
    assert "┏" in screen and "pending" in screen and queue_name in screen


async def test_progress_bar_on_a_terminal(starq, server, make_queue, queue_name, tmp_path):
    await make_queue()
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(300)))
    code, screen = run_in_terminal("-u", server.url, "-k", KEY, "submit", str(path), "-q", queue_name, "-b", "50")
    assert code == 0, screen
    assert "jobs/s" in screen and "100%" in screen and "Submitted 300 job(s)" in screen


async def test_delete_asks_on_a_terminal(starq, server, make_queue, queue_name):
    await make_queue()
    code, screen = run_in_terminal("-u", server.url, "-k", KEY, "delete", queue_name, answer=b"n\n")
    assert code == 1 and f"Delete queue '{queue_name}' and its 0 job(s)?" in screen
    assert (await starq("info", queue_name)).code == 0
    code, screen = run_in_terminal("-u", server.url, "-k", KEY, "delete", queue_name, answer=b"y\n")
    assert code == 0 and f"Deleted queue {queue_name}" in screen
    assert (await starq("info", queue_name)).code == 1


async def test_purge_asks_on_a_terminal(starq, server, make_queue, queue_name):
    await make_queue()
    await starq("submit", "-q", queue_name, "--payload", "{}")
    await starq("submit", "-q", queue_name, "--payload", "{}", "--delay", "600")
    code, screen = run_in_terminal("-u", server.url, "-k", KEY, "purge", queue_name, "-s", "pending", answer=b"n\n")
    assert code == 1 and f"Remove the 1 pending job(s) of queue '{queue_name}'?" in screen
    assert (await starq("info", queue_name, "--json")).json()["pending"] == 1
    code, screen = run_in_terminal(
        "-u", server.url, "-k", KEY, "purge", queue_name, "-s", "scheduled", "--json", answer=b"y\n"
    )
    assert code == 0 and '"purged": 1' in screen
    info = (await starq("info", queue_name, "--json")).json()
    assert (info["pending"], info["scheduled"]) == (1, 0)


async def test_schedule_delete_asks_on_a_terminal(starq, server, make_queue, queue_name):
    await make_queue()
    await starq("schedules", "create", queue_name, "s", "--every", "60")
    base = ("-u", server.url, "-k", KEY, "schedules", "delete", queue_name, "s")
    code, screen = run_in_terminal(*base, answer=b"n\n")
    assert code == 1 and f"Delete schedule 's' (every 60 s) of queue '{queue_name}'?" in screen
    assert (await starq("schedules", "show", queue_name, "s")).code == 0
    code, screen = run_in_terminal(*base, answer=b"y\n")
    assert code == 0 and f"Deleted schedule s of queue {queue_name}" in screen
    assert (await starq("schedules", "show", queue_name, "s")).code == 1


def test_help_lists_every_command():
    out = subprocess.run([STARQ, "--help"], capture_output=True, text=True, timeout=30).stdout
    for command in (
        "health",
        "queues",
        "create",
        "info",
        "update",
        "delete",
        "submit",
        "jobs",
        "job",
        "claim",
        "complete",
        "fail",
        "retry",
        "cancel",
        "release",
        "promote",
        "purge",
        "schedules",
        "pause",
        "resume",
        "watch",
        "worker",
        "serve",
        "completion",
    ):
        assert f"\n  {command} " in out, command


def test_shell_completion():
    env = {**os.environ, "_STARQ_COMPLETE": "bash_complete", "COMP_WORDS": "starq su", "COMP_CWORD": "1"}
    out = subprocess.run([STARQ], capture_output=True, text=True, env=env, timeout=30).stdout
    assert "plain,submit" in out.splitlines()
    env = {**os.environ, "_STARQ_COMPLETE": "bash_complete", "COMP_WORDS": "starq jobs q --st", "COMP_CWORD": "3"}
    assert "plain,--status" in subprocess.run([STARQ], capture_output=True, text=True, env=env).stdout.splitlines()
    script = subprocess.run(
        [STARQ], capture_output=True, text=True, timeout=30, env={**os.environ, "_STARQ_COMPLETE": "bash_source"}
    ).stdout
    assert "complete -o nosort -F _starq_completion starq" in script
    printed = subprocess.run([STARQ, "completion", "bash"], capture_output=True, text=True, timeout=30).stdout
    assert printed == script


def test_serve_usage_errors_keep_their_usage_line(tmp_path):
    # serve runs after the CLI's own event loop has ended; its errors must still look like any command's.
    done = subprocess.run(
        [STARQ, "serve", "--workers", "0", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Usage: starq serve [OPTIONS]")
    assert "Error: --workers must be at least 1" in done.stderr


async def test_watch_redraws_a_table_on_a_terminal(starq, server, make_queue, queue_name):
    await make_queue()
    code, screen = run_in_terminal("-u", server.url, "watch", queue_name, "-n", "2", "-i", "0.2")
    assert code == 0
    assert "starq watch" in screen and "done/s" in screen and queue_name in screen and "┏" in screen
