"""What setuptools cannot find by itself: Starq's packages and every file in them.

The metadata lives in ``pyproject.toml``. The card's top-level folders (``server/``, ``worker_kit/``, ``cli/``,
``dashboard/``) install as ``starq.server`` and so on, and setuptools' ``packages.find`` cannot add that prefix;
so the packages are found here, by walking the folders, with every data file beside them (Lua, templates,
static assets). A new subpackage or file is therefore in the wheel without anyone listing it.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
FOLDERS = ("server", "worker_kit", "cli", "dashboard")


def _packages() -> dict[str, Path]:
    """Every package below the folders, by its installed name."""
    found = {}
    for folder in FOLDERS:
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            found["starq." + ".".join(init.parent.relative_to(ROOT).parts)] = init.parent
    return found


def _data(packages: dict[str, Path]) -> dict[str, list[str]]:
    """Each package's non-Python files, those of its plain subfolders included (not those of subpackages)."""
    homes = {path: name for name, path in packages.items()}
    data: dict[str, list[str]] = {}
    for folder in FOLDERS:
        for file in sorted((ROOT / folder).rglob("*")):
            if not file.is_file() or file.suffix in (".py", ".pyc") or "__pycache__" in file.parts:
                continue
            home = next(parent for parent in file.parents if parent in homes)
            data.setdefault(homes[home], []).append(str(file.relative_to(home)))
    return data


PACKAGES = _packages()
setup(
    packages=list(PACKAGES),
    package_dir={f"starq.{folder}": folder for folder in FOLDERS},
    package_data=_data(PACKAGES),
)
