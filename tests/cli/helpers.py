"""Helpers of the CLI tests: the dev key, what a run of the CLI gave, and the CLI as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import attrs

KEY = "dev-key"


@attrs.frozen
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def starq_process(*args: str, **kw: Any) -> subprocess.Popen[str]:
    """``python -m starq.cli ARGS`` as a real process (for signals, completion and terminals)."""
    env = {**os.environ, **kw.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "starq.cli", *args], env=env, text=True, **kw)
