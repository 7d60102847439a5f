"""The Lua library: the files of ``lua/`` joined into one Redis Functions library.

``common.lua`` comes first and is shared by the others; each other file runs in a ``do ... end`` block of its
own, so its local functions stay its own (and a chunk's 200-local limit is never near). The constants the
Lua and the Python sides must agree on are written at the top from their Python declarations, so they cannot
disagree: the job statuses (``protocol.JOB_STATUSES``), the record fields the library returns for a job
(``models.RECORD``), the queue settings' defaults (``protocol.QUEUE_DEFAULTS``, for queues stored before a
setting existed) and the pub/sub channels (``keys.CHANNELS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable

from starq.worker_kit.protocol import QUEUE_DEFAULTS

from .keys import CHANNELS
from .models import RECORD, STATUSES, settings_to_redis

NAME = "starq"
# In load order: common.lua first, then each file of functions.
FILES = (
    "common.lua", "queues.lua", "jobs.lua", "outcomes.lua", "manage.lua", "schedules.lua", "reads.lua",
)  # fmt: skip


def _lua_strings(values: Iterable[str]) -> str:
    return "{" + ", ".join(f"'{v}'" for v in values) + "}"


def _lua_table(pairs: dict[str, str]) -> str:
    return "{" + ", ".join(f"{name} = '{value}'" for name, value in pairs.items()) + "}"


def build(folder: Traversable | None = None) -> str:
    """The library's source, as ``FUNCTION LOAD`` takes it, from ``folder`` (by default this package's ``lua/``;
    benchmarks/storecalls.py passes another version's)."""
    folder = folder or resources.files(__package__).joinpath("lua")
    parts = [
        f"#!lua name={NAME}",
        "-- Written by server/engine/library.py from the Python declarations: edit those, not these lines.",
        f"local STATUSES = {_lua_strings(STATUSES)}",
        f"local RECORD = {_lua_strings(RECORD)}",
        f"local CHANNELS = {_lua_table(CHANNELS)}",
        f"local DEFAULTS = {_lua_table(_stored_defaults())}",
    ]
    for name in FILES:
        text = folder.joinpath(name).read_text()
        parts.append(text if name == FILES[0] else f"do -- {name}\n{text}end")
    return "\n".join(parts)


def _stored_defaults() -> dict[str, str]:
    """The queue settings' defaults as the meta hash stores them (objects that default to none are left out)."""
    flat = settings_to_redis({k: v for k, v in QUEUE_DEFAULTS.items() if v is not None})
    return dict(zip(flat[::2], flat[1::2], strict=True))


LIBRARY = build()
