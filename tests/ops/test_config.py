"""``starq serve --check-config`` and docs/configuration.md: every setting validated, every one documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncclick
import attrs

from starq.cli.main import serve
from starq.server.metrics import metrics_table
from starq.server.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text()


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STARQ_")}
    return subprocess.run(
        [sys.executable, "-m", "starq.cli", "serve", "--check-config", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_prints_every_setting_and_hides_secrets():
    done = check(
        "--port",
        "9000",
        "--max-batch",
        "50",
        "--redis-url",
        "redis://user:hunter2@db:6379/0",
        env={"STARQ_API_KEYS": "k1,k2", "STARQ_LOG_FORMAT": "json", "STARQ_SHUTDOWN_GRACE": "3.5"},
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert set(shown) == {f.name for f in attrs.fields(Settings)}
    assert shown["port"] == 9000 and shown["max_batch"] == 50 and shown["log_format"] == "json"
    assert shown["shutdown_grace"] == 3.5
    assert shown["api_keys"] == "2 key(s)" and "k1" not in done.stdout
    assert "hunter2" not in done.stdout and shown["redis_url"] == "redis://***@db:6379/0"


def test_check_config_rejects_what_cannot_work():
    for args, env, message in [
        (("--host", "0.0.0.0"), {}, "dev mode"),
        (("--max-batch", "0"), {}, "--max-batch must be at least 1"),
        (("--workers", "0"), {}, "--workers"),
        ((), {"STARQ_LOG_FORMAT": "xml"}, "log-format"),
        ((), {"STARQ_MAX_BLOCK_MS": "soon"}, "max-block-ms"),
        (("--shutdown-grace", "-1"), {}, "shutdown-grace"),
        (("--redis-url", "redis://a:1,b:2"), {}, "redis+cluster://"),
        (("--redis-url", "redis+sentinel://s:26379"), {}, "primary name"),
        (("--redis-url", "mysql://db"), {}, "scheme"),
    ]:
        done = check(*args, env=env)
        assert done.returncode == 2, (args, env, done.stdout)
        assert message in done.stderr, (message, done.stderr)
        assert not done.stdout


def test_redis_cluster_flag_reads_a_plain_url_as_a_cluster():
    done = check("--redis-cluster", "--redis-url", "redis://10.0.0.1:7000,10.0.0.2:7000")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["redis_url"] == "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"


def test_flags_win_over_environment():
    done = check("--log-level", "error", "--no-access-log", env={"STARQ_LOG_LEVEL": "debug", "STARQ_ACCESS_LOG": "1"})
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["log_level"] == "error" and shown["access_log"] is False


def test_the_configuration_table_is_made_from_the_declarations():
    assert settings_table() in DOC, "docs/configuration.md is out of date: run python -m starq.server.settings"


def test_every_setting_has_a_flag_and_its_variable_except_the_keys():
    flags = {p.name: p for p in serve.params if isinstance(p, asyncclick.Option)}
    for field in attrs.fields(Settings):
        if field.name == "api_keys":
            assert field.name not in flags  # only from the environment
            continue
        assert field.name in flags, f"{field.name} has no flag of starq serve"
        assert f"env STARQ_{field.name.upper()}" in (flags[field.name].help or "")


def test_the_metrics_table_is_made_from_the_declarations():
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    assert metrics_table() in deployment, "docs/deployment.md is out of date: run python -m starq.server.metrics"
