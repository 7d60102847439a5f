"""Another version of Starq to measure this checkout against (``run --baseline REV``).

The version of git revision REV is checked out in a temporary git worktree of this repository (``git worktree
add --detach``), its locked runtime dependencies installed there with ``uv sync --frozen --no-default-groups
--all-extras`` (the server's dependencies are an extra since the client-only install; from uv's cache: no
download when this checkout's dependencies are the same), and its ``starq serve`` run with that environment's
Python. The worktree and its environment are removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .harness import ROOT, Version

SYNC_TIMEOUT = 600


class BaselineError(Exception):
    """The revision cannot be checked out or installed."""


def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise BaselineError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def describe_current() -> str:
    """This checkout's commit, marked when its files differ from it."""
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (BaselineError, OSError):
        return ""
    return commit + (" (with uncommitted changes)" if dirty else "")


@contextmanager
def checkout(rev: str, log=print) -> Iterator[Version]:
    """The version of ``rev``, installed in a temporary worktree for as long as the block runs."""
    commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    folder = tempfile.mkdtemp(prefix="starq-baseline-")
    path = os.path.join(folder, "src")
    log(f"baseline {rev} ({commit[:10]}): git worktree add --detach {path}")
    try:
        git("worktree", "add", "--detach", path, commit)
        try:
            # Not this checkout's environment: uv would warn and ignore it, and the child must not inherit it.
            env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
            log(f"baseline {rev}: uv sync --frozen --no-default-groups --all-extras")
            proc = subprocess.run(
                ["uv", "sync", "--frozen", "--no-default-groups", "--all-extras"],
                cwd=path,
                env=env,
                capture_output=True,
                text=True,
                timeout=SYNC_TIMEOUT,
            )
            if proc.returncode != 0:
                raise BaselineError(f"uv sync in the worktree of {rev} failed:\n{proc.stderr[-3000:]}")
            python = os.path.join(path, ".venv", "bin", "python")
            found = subprocess.run(
                [python, "-c", "import starq.server.serve, starq.cli; print(starq.server.serve.__file__)"],
                cwd=path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if found.returncode != 0 or not os.path.realpath(found.stdout.strip()).startswith(os.path.realpath(path)):
                raise BaselineError(f"the environment of {rev} does not serve its own code: {found.stderr[-2000:]}")
            label = rev if commit.startswith(rev) else f"{rev} ({commit[:10]})"
            yield Version("baseline", label, python, path, commit)
        finally:
            try:
                git("worktree", "remove", "--force", path)
            except BaselineError as exc:
                log(f"could not remove the baseline's worktree {path}: {exc}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
