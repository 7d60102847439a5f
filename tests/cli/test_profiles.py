"""Named profiles (``config.toml`` under XDG_CONFIG_HOME, ``--profile``, ``STARQ_PROFILE``) and what an
authentication error says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.helpers import KEY


def write_config(home: Path, text: str) -> dict[str, str]:
    (home / "starq").mkdir(parents=True, exist_ok=True)
    (home / "starq" / "config.toml").write_text(text)
    return {"XDG_CONFIG_HOME": str(home)}


async def test_a_named_profile_gives_url_and_key(starq, server, queue_name, tmp_path, free_port):
    env = write_config(
        tmp_path,
        f'[profiles.local]\nurl = "{server.url}"\napi_key = "{KEY}"\n\n'
        f'[profiles.down]\nurl = "http://127.0.0.1:{free_port}"\n',
    )
    made = await starq("--profile", "local", "create", queue_name, url="", key=None, env=env)
    assert made.code == 0, made.stderr  # a write: the key came from the profile too
    by_env = await starq("info", queue_name, url="", key=None, env={**env, "STARQ_PROFILE": "local"})
    assert by_env.code == 0 and f"name\t{queue_name}" in by_env.stdout
    down = await starq("--profile", "down", "health", url="", key=None, env=env)
    assert down.code == 1 and f"127.0.0.1:{free_port}" in down.stderr


async def test_options_and_environment_win_over_the_profile(starq, server, queue_name, tmp_path, free_port):
    env = write_config(
        tmp_path,
        f'default = "elsewhere"\n[profiles.elsewhere]\nurl = "http://127.0.0.1:{free_port}"\napi_key = "bad"\n',
    )
    assert (await starq("health", url="", key=None, env=env)).code == 1  # the default profile's url
    assert (await starq("create", queue_name, key=None, env=env)).code == 1  # -u given; the profile's key refused
    assert (await starq("create", queue_name, env=env)).code == 0  # -u and -k given
    by_env = await starq("info", queue_name, url="", key=None, env={**env, "STARQ_URL": server.url})
    assert by_env.code == 0
    key_by_env = await starq("pause", queue_name, key=None, env={**env, "STARQ_API_KEY": KEY})
    assert key_by_env.code == 0, key_by_env.stderr


async def test_config_mistakes_are_usage_errors(starq, tmp_path):
    for text, expected in (
        ("[profiles.a\n", "not valid TOML"),
        ('[profiles.a]\napikey = "k"\n', "unknown key(s) apikey"),
        ("[profiles.a]\nurl = 5\n", "url must be a non-empty string"),
        ('default = "b"\n[profiles.a]\nurl = "http://x"\n', "no profile 'b' (the file's default)"),
        ("servers = 1\n", "unknown key(s) servers"),
    ):
        ran = await starq("health", url="", key=None, env=write_config(tmp_path, text))
        assert ran.code == 2 and expected in ran.stderr, (text, ran.stderr)
    missing = await starq("--profile", "nope", "health", url="", key=None, env={"XDG_CONFIG_HOME": str(tmp_path / "x")})
    assert missing.code == 2 and "no profile 'nope'" in missing.stderr and "does not exist" in missing.stderr


async def test_auth_errors_say_how_to_pass_a_key(starq, queue_name, tmp_path, server):
    none = await starq("create", queue_name, key=None)
    assert none.code == 1 and none.stderr.count("\n") == 1
    assert "no API key was given: pass one with -k/--api-key or STARQ_API_KEY" in none.stderr
    wrong = await starq("create", queue_name, key="wrong")
    assert "the API key from -k/--api-key was refused" in wrong.stderr
    by_env = await starq("create", queue_name, key=None, env={"STARQ_API_KEY": "wrong"})
    assert "the API key from STARQ_API_KEY was refused" in by_env.stderr
    env = write_config(tmp_path, 'default = "p"\n[profiles.p]\napi_key = "wrong"\n')
    by_profile = await starq("create", queue_name, key=None, env=env)
    assert "the API key from profile 'p' was refused" in by_profile.stderr
    submitted = await starq("submit", "-", "-q", queue_name, key=None, input="{}\n")
    assert submitted.code == 1 and "pass one with -k/--api-key or STARQ_API_KEY" in submitted.stderr
    other = await starq("info", queue_name + "-missing", key=None)
    assert other.code == 1 and "api-key" not in other.stderr  # only for authentication errors


def test_commands_without_a_server_read_no_profile(tmp_path):
    env = write_config(tmp_path, "[profiles.a\n")  # broken
    done = subprocess.run(
        [sys.executable, "-m", "starq.cli", "completion", "bash"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert done.returncode == 0 and "_starq_completion" in done.stdout
    checked = subprocess.run(
        [sys.executable, "-m", "starq.cli", "serve", "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert checked.returncode == 0, checked.stderr


def test_a_worker_with_a_refused_key_says_so(server, queue_name, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "starq.cli", "-u", server.url, "-k", "wrong", "worker", "json:dumps", "-q", queue_name],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert "the API key from -k/--api-key was refused: pass another with -k/--api-key" in done.stderr
