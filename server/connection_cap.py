"""How many client connections one server process may hold (``max_connections``), from its open-file limit.

Every connection is a file descriptor, so the process's open-file limit (``RLIMIT_NOFILE``) is the real cap: past
it ``accept`` fails with EMFILE, and so does anything else that needs a descriptor (a store connection, a static
file). The cap keeps a reserve below the limit for those, and answers the connections beyond it with a clean 503.

``max_connections = 0`` (the default) derives the cap from the limit, after raising the soft limit to the hard
limit where the process may (most systems start processes at a soft 1,024 with a far higher hard limit). An
explicit cap that does not fit below the limit is refused at start, with the numbers, rather than failing later
with EMFILE under load.
"""

from __future__ import annotations

import resource

import attrs

# Descriptors kept for what is not a client connection: the listener, the event loop's own, stdio and logs, the
# embedded store's pipes, the data folder's lock, static files being sent, a worker restart's sockets.
OTHER_FILES = 128
# A cluster client keeps a pool of ``redis_max_connections`` per node: room for this many nodes.
CLUSTER_NODES = 8
# What the kernel takes when the hard limit is "unlimited" and /proc does not say (Linux's default fs.nr_open).
NR_OPEN_DEFAULT = 1_048_576


class CapError(ValueError):
    """The configured cap does not fit below the open-file limit (the message says by how much and what to do)."""


@attrs.frozen
class OpenFiles:
    """The process's open-file limit, as found and as raised."""

    soft: int
    hard: int  # the hard limit as a number (an "unlimited" one: what the kernel allows instead)
    raised_from: int | None = None  # the soft limit before it was raised
    raise_refused: str = ""  # why raising failed, if it did


@attrs.frozen
class Cap:
    connections: int
    reason: str  # for the start-up log: where the number comes from


def _kernel_max() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return NR_OPEN_DEFAULT


def raise_open_files() -> OpenFiles:
    """Raises the soft open-file limit to the hard limit where allowed; returns what it is now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = _kernel_max()
    if soft != resource.RLIM_INFINITY and soft >= hard:
        return OpenFiles(soft, hard)
    if soft == resource.RLIM_INFINITY:
        return OpenFiles(hard, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    except (OSError, ValueError) as exc:
        return OpenFiles(soft, hard, raise_refused=str(exc))
    return OpenFiles(hard, hard, raised_from=soft)


def reserve(redis_max_connections: int, cluster: bool) -> int:
    """Descriptors kept below the limit for the store's connections and other files."""
    return OTHER_FILES + redis_max_connections * (CLUSTER_NODES if cluster else 1)


def decide(max_connections: int, files: OpenFiles, kept: int) -> Cap:
    """The cap for ``max_connections`` (0: derived) given the open-file limit and the descriptors ``kept``.

    Raises:
        CapError: an explicit cap above what fits, or a limit that leaves no room for connections at all.
    """
    room = files.soft - kept
    limit = f"open-file limit {files.soft:,}"
    if files.raised_from is not None:
        limit += f", raised from {files.raised_from:,} to the hard limit"
    elif files.raise_refused:
        limit += f", which could not be raised to the hard limit {files.hard:,}: {files.raise_refused}"
    elif files.soft < files.hard:
        limit += f" (hard limit {files.hard:,})"
    why_kept = f"{kept:,} kept for the store's connections and other files"
    fix = "raise the open-file limit (ulimit -n, or LimitNOFILE= in a systemd unit)"
    if room < 1:
        raise CapError(f"the {limit} leaves no room for client connections ({why_kept}): {fix}")
    if max_connections == 0:
        return Cap(room, f"derived from the {limit}, less {why_kept}")
    if max_connections > room:
        raise CapError(
            f"--max-connections {max_connections:,} does not fit the {limit}: at most {room:,} connections fit "
            f"({why_kept}). Lower it, set it to 0 to derive it from the limit, or {fix}"
        )
    return Cap(max_connections, f"as set; the {limit} would allow {room:,}")


def resolve(max_connections: int, redis_max_connections: int, cluster: bool) -> Cap:
    """Raises the open-file limit where allowed and decides the cap (see ``decide``)."""
    return decide(max_connections, raise_open_files(), reserve(redis_max_connections, cluster))
