"""Named profiles: a server's ``url`` and ``api_key`` kept under a name in ``~/.config/starq/config.toml``.

    default = "prod"            # optional: the profile used when none is named

    [profiles.prod]
    url = "https://starq.example.com"
    api_key = "..."

``--profile NAME`` (or ``STARQ_PROFILE``) picks one. A value from a profile only fills what neither an option nor
an environment variable gave (see ``group.main``). The file is read with ``tomllib``, and strictly: a key that is
not known is refused, so a typo (``apikey``) is an error rather than a silently missing key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncclick as click

# What a profile may hold: the global options it stands in for, as the TOML file names them.
PROFILE_KEYS = ("url", "api_key")
PROFILE_ENV = "STARQ_PROFILE"


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/starq/config.toml``, or ``~/.config/starq/config.toml`` when that variable is unset or
    not absolute (the XDG Base Directory rule)."""
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "starq" / "config.toml"


class ProfileError(click.UsageError):
    """The config file or the profile asked for cannot be used (exit status 2, before anything is sent)."""


def load_profile(name: str | None, path: Path) -> tuple[str, dict[str, str]]:
    """The profile to use and its settings: ``name`` if given, else the file's ``default``; ``("", {})`` when
    neither names one (a missing file is then no error)."""
    if not path.exists():
        if name:
            raise ProfileError(f"no profile {name!r}: {path} does not exist")
        return "", {}
    document = _read(path)
    unknown = set(document) - {"default", "profiles"}
    if unknown:
        raise ProfileError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (expected default, [profiles.NAME])")
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ProfileError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables")
    # Every profile is checked, not only the one used: a mistake shows up on the next command, not on the day
    # that profile is needed.
    checked = {name_: _checked(name_, table, path) for name_, table in profiles.items()}
    default = document.get("default", "")
    if not isinstance(default, str):
        raise ProfileError(f"{path}: 'default' must be a profile's name")
    chosen = name or default
    if not chosen:
        return "", {}
    if chosen not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        source = "" if name else " (the file's default)"
        raise ProfileError(f"no profile {chosen!r}{source} in {path} (profiles: {known})")
    return chosen, checked[chosen]


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror}") from None


def _checked(name: str, table: Any, path: Path) -> dict[str, str]:
    where = f"{path}: [profiles.{name}]"
    if not isinstance(table, dict):
        raise ProfileError(f"{where} must be a table")
    unknown = set(table) - set(PROFILE_KEYS)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(PROFILE_KEYS)})")
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise ProfileError(f"{where}: {key} must be a non-empty string")
    return dict(table)
