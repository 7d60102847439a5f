"""CLI fixtures: run ``starq`` in-process (asyncclick's CliRunner) against the shared test server, and make queues
through it (``helpers.starq_process`` runs it as a real process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from asyncclick.testing import CliRunner

from cli.helpers import KEY, Ran
from starq.cli.main import main


@pytest.fixture
def starq(server, tmp_path_factory) -> Callable[..., Awaitable[Ran]]:
    """``await starq("queues", "--json")`` runs the CLI in-process against the shared test server.

    ``url=""`` or ``key=None`` leave out ``-u`` or ``-k``; ``env`` adds environment variables. The CLI sees no
    STARQ_* variable of the machine's, and an empty config directory unless ``env`` names another."""
    config_home = tmp_path_factory.mktemp("config")

    async def run(
        *args: str,
        input: str | bytes | None = None,
        url: str | None = None,
        key: str | None = KEY,
        env: dict[str, str | None] | None = None,
    ) -> Ran:
        runner = CliRunner()
        base = (["-u", url or server.url] if url != "" else []) + (["-k", key] if key else [])
        clean: dict[str, str | None] = {
            "STARQ_URL": None,
            "STARQ_API_KEY": None,
            "STARQ_PROFILE": None,
            "XDG_CONFIG_HOME": str(config_home),
        }
        env = {**clean, **(env or {})}
        result = await runner.invoke(main, [*base, *args], input=input, catch_exceptions=False, env=env)
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
