"""CPU time and memory of server processes, read from ``/proc`` (Linux only, like the whole suite)."""

from __future__ import annotations

import os

import attrs

_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (``starq serve --workers N`` serves from child processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the processes, in MB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def served_connections(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections to local ``port`` each process holds (which worker process of
    ``starq serve --workers N`` got the clients' keep-alive connections)."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                        established.add(inode)
        except OSError:
            continue
    held = {}
    for pid in pids:
        count = 0
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            count += target.startswith("socket:[") and target[8:-1] in established
        held[pid] = count
    return held


@attrs.define
class CpuMeter:
    """CPU used by a set of processes between ``start()`` and ``stop()``."""

    pids: list[int]
    _start: float = 0.0
    used: float = 0.0

    def start(self) -> None:
        self._start = cpu_seconds(self.pids)

    def stop(self) -> float:
        self.used = cpu_seconds(self.pids) - self._start
        return self.used


def load_average() -> str:
    """The 1/5/15-minute load averages, as ``uptime`` shows them."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
