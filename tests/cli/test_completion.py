"""The completion scripts, loaded into real bash, zsh and fish: they complete ``starq`` and ``uv run starq``
(which runs the project's own ``starq``), and leave uv's own completion in place for everything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project, where `uv run` finds starq
BIN = str(Path(sys.executable).parent)


def script(shell: str) -> str:
    done = subprocess.run([f"{BIN}/starq", "completion", shell], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_shell(argv: list[str], tmp_path: Path, *, path: str) -> list[str]:
    """Runs a shell in the project with only ``path`` on PATH (``starq`` on it or not); its output lines."""
    env = {
        **os.environ,
        "PATH": path,
        "HOME": str(tmp_path),
        "ZDOTDIR": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def uv_path() -> str:
    """The PATH of a shell in a uv project: uv, but not the project's environment (so not ``starq``)."""
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and Path(d).resolve() != Path(BIN).resolve()]
    return os.pathsep.join(dirs)


def test_the_printed_script_is_the_one_asyncclick_serves():
    env = {**os.environ, "_STARQ_COMPLETE": "bash_source"}
    served = subprocess.run([f"{BIN}/starq"], capture_output=True, text=True, timeout=30, env=env).stdout
    assert served == script("bash")
    assert "complete -o nosort -F _starq_completion starq" in served  # starq itself, as asyncclick does it
    assert "_starq_completion_uv_setup" in served
    # However it is started, the script is for the program people type: starq.
    module = subprocess.run([sys.executable, "-m", "starq.cli", "completion", "bash"], capture_output=True, text=True)
    assert module.stdout == served


def test_bash(tmp_path):
    (tmp_path / "c.bash").write_text(script("bash"))
    body = f"""
        _uv_before() {{ COMPREPLY=(from-uv); }}
        complete -o default -F _uv_before uv     # uv's own completion, loaded first
        source {tmp_path}/c.bash
        source {tmp_path}/c.bash                  # twice: still one hand-over to uv's
        complete -p uv
        COMP_WORDS=(uv run --no-sync starq su); COMP_CWORD=4; _starq_completion_uv
        echo "uv-run: ${{COMPREPLY[*]}}"
        COMPREPLY=(); COMP_WORDS=(uv run --no-sync starq jobs q --st); COMP_CWORD=6; _starq_completion_uv
        echo "option: ${{COMPREPLY[*]}}"
        COMPREPLY=(); COMP_WORDS=(uv r); COMP_CWORD=1; _starq_completion_uv uv r uv
        echo "uv: ${{COMPREPLY[*]}}"
        COMPREPLY=(); COMP_WORDS=(starq jobs q --status f); COMP_CWORD=4; PATH={BIN}:$PATH _starq_completion starq
        echo "starq: ${{COMPREPLY[*]}}"
    """
    lines = run_shell(["bash", "--norc", "-c", body], tmp_path, path=uv_path())
    assert lines == [
        "complete -o default -F _starq_completion_uv uv",
        "uv-run: submit",
        "option: --status",
        "uv: from-uv",
        "starq: failed",
    ]


def test_zsh(tmp_path):
    (tmp_path / "c.zsh").write_text(script("zsh"))
    # compadd and _describe only work while the line editor completes; here they print what they were given.
    body = f"""
        autoload -U compinit && compinit -u -D
        _uv_before() {{ print -r -- "uv: from-uv" }}
        compdef _uv_before uv
        source {tmp_path}/c.zsh
        source {tmp_path}/c.zsh
        print -r -- "registered: ${{_comps[uv]}} ${{_comps[starq]}}"
        compadd() {{ print -r -- "compadd: ${{(P)${{@[-1]}}}}" }}
        _describe() {{ print -r -- "describe: ${{(P)${{@[3]}}}}" }}
        words=(uv run --no-sync starq su); CURRENT=5; _starq_completion_uv
        words=(uv r); CURRENT=2; _starq_completion_uv
    """
    lines = run_shell(["zsh", "-f", "-c", body], tmp_path, path=uv_path())
    assert lines == [
        "registered: _starq_completion_uv _starq_completion",
        "describe: submit:Submit a JSONL file (one payload object...",
        "uv: from-uv",
    ]


def test_fish(tmp_path):
    (tmp_path / "c.fish").write_text(script("fish"))
    body = f"""
        source {tmp_path}/c.fish
        complete -C 'uv run --no-sync starq jobs q --st'
        echo ...
        set PATH {BIN} $PATH
        complete -C 'starq su'
    """
    lines = run_shell(["fish", "--no-config", "-c", body], tmp_path, path=uv_path())
    assert lines == [
        "--status\tOnly jobs with this status.",
        "...",
        "submit\tSubmit a JSONL file (one payload object...",
    ]


def test_completing_a_command_line_does_not_load_the_http_client():
    # Every Tab runs the CLI afresh: the HTTP client (httpx and what it imports) is a third of that start-up, and
    # only a command that talks to a server needs it.
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('httpx' in sys.modules, file=sys.stderr))\n"
        "from starq.cli.main import main\n"
        "main(prog_name='starq')\n"
    )
    env = {**os.environ, "_STARQ_COMPLETE": "bash_complete", "COMP_WORDS": "starq qu", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert "plain,queues" in done.stdout.splitlines(), done
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr
