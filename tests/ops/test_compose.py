"""compose.yaml, the Dockerfile and .dockerignore, checked without a Docker engine: parsed, cross-checked, and
their commands run for real where they can be (the store's flags, the image's build steps and start command,
the health check)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from ops.helpers import drive_installed
from starq.server.embedded import find_server_binary, free_port, start_store

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
CLUSTER = {"redis-shard-1", "redis-shard-2", "redis-shard-3", "cluster-init", "starq-cluster"}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (a JSON list): {args}"
    return value


def substitute(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``; a missing required variable fails."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env:
            return env[name]
        assert op != ":?", f"{name} is required: {arg}"
        return arg

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", one, value)


def test_every_service_is_there_and_the_cluster_ones_are_in_a_profile():
    assert set(SERVICES) == {"redis", "starq"} | CLUSTER
    for name, service in SERVICES.items():
        assert service.get("profiles", []) == (["cluster"] if name in CLUSTER else []), name


def test_every_long_running_service_has_a_health_check_and_restarts():
    for name, service in SERVICES.items():
        if name == "cluster-init":
            assert service["restart"] == "no"
            continue
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and check["interval"] and check["retries"] >= 1, name
        assert service["restart"] == "unless-stopped", name


def test_volumes_are_declared_and_every_store_keeps_an_append_only_file():
    declared = set(COMPOSE["volumes"])
    used = set()
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            used.add(source)
            assert target == "/data", name
        if name == "redis" or name.startswith("redis-shard"):
            args = service["command"]
            assert args[args.index("--appendonly") + 1] == "yes", name
            assert args[args.index("--maxmemory-policy") + 1] == "noeviction", name
            assert service.get("volumes"), f"{name} keeps no data"
    assert used == declared


def test_api_services_use_the_image_keys_from_the_environment_and_the_right_store():
    for name, store_url in (
        ("starq", "redis://redis:6379/0"),
        ("starq-cluster", "redis+cluster://redis-shard-1:6379,redis-shard-2:6379,redis-shard-3:6379"),
    ):
        service = SERVICES[name]
        assert service["build"] == "."
        env = service["environment"]
        assert env["STARQ_REDIS_URL"] == store_url
        assert re.fullmatch(r"\$\{STARQ_API_KEYS:\?[^}]+\}", env["STARQ_API_KEYS"]), "keys must come from the env"
        (port,) = service["ports"]
        assert port.endswith(":8000")
        assert service["command"][:1] == ["serve"]
        assert all(
            cond in ("service_healthy", "service_completed_successfully")
            for cond in (d["condition"] for d in service["depends_on"].values())
        )
    for shard in ("redis-shard-1", "redis-shard-2", "redis-shard-3"):
        assert shard in SERVICES["cluster-init"]["depends_on"]
        assert shard in SERVICES["starq-cluster"]["environment"]["STARQ_REDIS_URL"]


def test_the_image_runs_starq_serve_as_an_unprivileged_user():
    stage = final_stage()
    words = dict(stage)
    assert words["USER"] not in ("root", "0")
    uid = re.search(r"useradd .*--uid (\d+)", words["RUN"])
    assert uid and uid.group(1) != "0"
    assert exec_form(words["ENTRYPOINT"]) == ["starq"]
    assert exec_form(words["CMD"])[:1] == ["serve"]
    assert words["EXPOSE"] == "8000"
    cmd = exec_form(words["CMD"])
    assert cmd[cmd.index("--port") + 1] == "8000" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    # compose runs the image's entrypoint with its own command, which must be the image's own.
    for name in ("starq", "starq-cluster"):
        assert SERVICES[name]["command"] == exec_form(words["CMD"])
    health = words["HEALTHCHECK"]
    assert "--interval=" in health and "--timeout=" in health
    # The same check, but of readiness in compose (which waits on it for depends_on) where the image checks
    # liveness.
    for name in ("starq", "starq-cluster"):
        assert [arg.replace(READY, LIVE) for arg in compose_check(name)] == image_check()


LIVE, READY = "/api/health/live", "/api/health/ready"


def image_check() -> list[str]:
    return exec_form(dict(final_stage())["HEALTHCHECK"].split("CMD", 1)[1].strip())


def compose_check(name: str) -> list[str]:
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return test[1:]


def test_the_image_checks_liveness_and_compose_readiness():
    assert any(f"127.0.0.1:8000{LIVE}'" in arg for arg in image_check()), image_check()
    for name in ("starq", "starq-cluster"):
        assert any(f"127.0.0.1:8000{READY}'" in arg for arg in compose_check(name)), name
    text = (ROOT / "docs" / "deployment.md").read_text()
    assert f"livenessProbe:\n      httpGet: {{path: {LIVE}" in text
    assert f"readinessProbe:\n      httpGet: {{path: {READY}" in text


def test_copy_sources_exist_and_reach_the_build_context():
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in ignore:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    for word, args in dockerfile():
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert included(source), f"{source} is excluded by .dockerignore"
    assert not included(".venv") and not included("tests") and not included(".starq-data")


def test_the_store_flags_are_valid_for_the_store_we_run(tmp_path):
    """Runs the local Redis/Valkey with each compose store's flags; a flag it does not know stops it."""
    for name in ("redis", "redis-shard-1"):
        port = _port_with_free_bus()
        data = tmp_path / name
        data.mkdir()
        args = [*SERVICES[name]["command"][1:], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
        proc = subprocess.Popen([find_server_binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert _wait_for_appendonly(port) == "yes", (name, proc.poll())
        finally:
            proc.kill()
            proc.wait()


def _port_with_free_bus() -> int:
    """A free port below 55536 whose cluster bus port (+10000) is free too: cluster mode needs both."""
    import random
    import socket

    while True:
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


def _wait_for_appendonly(port: int) -> str:
    import socket
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"CONFIG GET appendonly\r\n")
                reply = s.recv(200).decode()
                if "appendonly" in reply:
                    return reply.split("\r\n")[-2]
        except OSError:
            time.sleep(0.05)
    return ""


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    """The image's build steps run for real: the Dockerfile's COPY and ``uv sync`` lines in a scratch context
    (offline, from uv's cache), giving the virtualenv the image would ship."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to run the Dockerfile's build steps"
    context = tmp_path_factory.mktemp("image")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(context / ".venv"),
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    ran = 0
    build = dockerfile()[: [i for i, (w, _) in enumerate(dockerfile()) if w == "FROM"][1]]
    for word, args in build:
        if word == "COPY":
            *sources, target = args.split()
            for source in sources:
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, context / Path(target), ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(ROOT / source, context / Path(source).name)
        elif word == "RUN" and args.startswith("uv "):
            subprocess.run(shlex.split(args), cwd=context, env=env, check=True, capture_output=True, timeout=300)
            ran += 1
    assert ran == 2
    return context / ".venv"


def test_the_image_ships_no_dev_or_benchmark_tools(image_venv):
    """The runtime dependencies only: ``uv sync`` would add the default groups (dev and bench) unless told not to."""
    (site,) = (image_venv / "lib").glob("python*/site-packages")
    assert (site / "trio").is_dir() and (site / "coredis").is_dir()
    assert not (site / "pytest").exists() and not (site / "bullmq").exists()


def test_the_built_image_starts_with_the_compose_settings(image_venv):
    words = dict(final_stage())
    for name in ("starq", "starq-cluster"):
        service = SERVICES[name]
        env = {k: substitute(str(v), {"STARQ_API_KEYS": "k1,k2"}) for k, v in service["environment"].items()}
        command = [str(image_venv / "bin" / exec_form(words["ENTRYPOINT"])[0]), *service["command"], "--check-config"]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("STARQ_", "VIRTUAL_ENV"))}
        done = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (name, done.stderr)
        shown = json.loads(done.stdout)
        assert shown["host"] == "0.0.0.0" and shown["port"] == 8000 and shown["api_keys"] == "2 key(s)"
        assert shown["redis_url"] == env["STARQ_REDIS_URL"] and shown["log_format"] == "json"
        assert shown["access_log"] is True


def test_the_built_image_serves(image_venv, tmp_path):
    # The image's virtualenv, used from outside the repository: its Lua library, templates and assets are package
    # data inside it, and the server itself (not only --check-config) starts and serves.
    drive_installed(image_venv / "bin" / "starq", tmp_path)


def _passes(command: list[str], url: str) -> bool:
    """Runs a health check's command (python -c CODE) against the server at ``url``."""
    assert command[:2] == ["python", "-c"]
    code = command[2].replace("http://127.0.0.1:8000", url)
    assert code != command[2]
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode == 0


def test_the_health_check_passes_on_a_live_server_and_fails_without_one(server):
    for command in (image_check(), compose_check("starq")):
        assert _passes(command, server.url)
        assert not _passes(command, f"http://127.0.0.1:{free_port()}")
    assert httpx.get(server.url + "/api/health").status_code == 200


def test_with_its_store_gone_a_server_stays_live_but_not_ready(server_factory, tmp_path):
    store = start_store(tmp_path, unix_socket=False, appendonly=False)
    try:
        server = server_factory("--redis-url", store.url, redis=False)
        assert _passes(image_check(), server.url) and _passes(compose_check("starq"), server.url)
        store.kill()
        assert _passes(image_check(), server.url)
        assert not _passes(compose_check("starq"), server.url)
    finally:
        store.kill()
