"""CPU time of process trees, from /proc (Linux).

A tree's CPU is the utime + stime of its root and of every live descendant, plus what its
reaped children left in cutime + cstime. Sample before and after a load run: the difference
is what serving that load cost.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_pids(roots: Iterable[int]) -> set[int]:
    """The roots and all their live descendants."""
    children = _children_by_parent()
    found: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds (user + system) used so far by the trees under ``roots``."""
    ticks = 0
    for pid in tree_pids(roots):
        fields = _stat(pid)
        if fields is not None:
            # after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / TICKS
