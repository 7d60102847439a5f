"""The Lua library: the files of ``lua/`` joined into one Redis Functions library.

``common.lua`` comes first and is shared by the others; each other file runs in a ``do ... end`` block of its
own, so its local functions stay its own (and a chunk's 200-local limit is never near). The constants the
Lua and the Python sides must agree on are written at the top from their Python declarations, so they cannot
disagree: the job statuses (``protocol.JOB_STATUSES``) and the record fields the library returns for a job
(``models.RECORD``).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

from .models import RECORD, STATUSES

NAME = "starq"
# In load order: common.lua first, then each file of functions.
FILES = (
    "common.lua", "queues.lua", "jobs.lua", "outcomes.lua", "manage.lua", "schedules.lua", "reads.lua",
)  # fmt: skip


def _lua_strings(values: Iterable[str]) -> str:
    return "{" + ", ".join(f"'{v}'" for v in values) + "}"


def build() -> str:
    """The library's source, as ``FUNCTION LOAD`` takes it."""
    folder = resources.files(__package__).joinpath("lua")
    parts = [
        f"#!lua name={NAME}",
        "-- Written by server/engine/library.py from the Python declarations: edit those, not these lines.",
        f"local STATUSES = {_lua_strings(STATUSES)}",
        f"local RECORD = {_lua_strings(RECORD)}",
    ]
    for name in FILES:
        text = folder.joinpath(name).read_text()
        parts.append(text if name == FILES[0] else f"do -- {name}\n{text}end")
    return "\n".join(parts)


LIBRARY = build()
