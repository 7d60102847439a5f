"""Starq installed for real: the sdist and the wheel built from this checkout, the wheel installed into a clean
virtualenv outside the repository (no dev dependencies), and that installation serving on its embedded store."""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def install_outside(wheel: Path, home: Path) -> Path:
    """A fresh virtualenv in ``home`` with the wheel and its runtime dependencies (at the versions of uv.lock);
    returns its ``starq`` command."""
    constraints = home / "constraints.txt"
    locked = uv(
        "export", "--frozen", "--no-default-groups", "--no-emit-project", "--no-hashes", "--no-header", cwd=ROOT
    )
    constraints.write_text(locked)
    uv("venv", "--python", sys.executable, str(home / "venv"), cwd=home)
    uv("pip", "install", "--python", str(home / "venv" / "bin" / "python"), str(wheel), "-c", str(constraints),
       cwd=home)  # fmt: skip
    return home / "venv" / "bin" / "starq"


def test_the_wheel_installed_outside_the_repository_serves(built, tmp_path):
    _, wheel = built
    starq = install_outside(wheel, tmp_path)
    probe = subprocess.run(
        [str(starq.parent / "python"), "-c", "import starq.server.serve, starq.server.http1; print('ok')"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip() == "ok", probe.stderr
    drive_installed(starq, tmp_path)
