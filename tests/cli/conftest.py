"""CLI fixtures: run ``starq`` in-process (asyncclick's CliRunner) against the shared test server, and make queues
through it (``helpers.starq_process`` runs it as a real process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from asyncclick.testing import CliRunner

from cli.helpers import KEY, Ran
from starq.cli.main import main


@pytest.fixture
def starq(server) -> Callable[..., Awaitable[Ran]]:
    """``await starq("queues", "--json")`` runs the CLI in-process against the shared test server."""

    async def run(*args: str, input: str | bytes | None = None, url: str | None = None, key: str | None = KEY) -> Ran:
        runner = CliRunner()
        base = ["-u", url or server.url] + (["-k", key] if key else [])
        result = await runner.invoke(
            main, [*base, *args], input=input, catch_exceptions=False, env={"STARQ_URL": None, "STARQ_API_KEY": None}
        )
        return Ran(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def make_queue(starq, queue_name) -> Callable[..., Awaitable[str]]:
    """Creates the test's queue through the CLI (retries at once, so failure tests do not wait)."""

    async def make(*options: str, name: str | None = None) -> str:
        name = name or queue_name
        ran = await starq("create", name, "--retry-delay", "0", *options)
        assert ran.code == 0, ran.stderr
        return name

    return make


@pytest.fixture
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
