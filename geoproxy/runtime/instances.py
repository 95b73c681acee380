"""Where each ``geoproxy run`` keeps its embedded Redis, and how the other commands find it.

Rules:
1. The runtime directory is ``$XDG_RUNTIME_DIR/geoproxy-UID/`` (else the temporary
   directory's). The first ``geoproxy run`` that needs an embedded Redis owns it: the socket
   ``redis.sock``, its log, ``redis.url`` and the pid file ``redis.pid`` (locked while it runs,
   ``ownership.py``) are that run's files, and only it removes them.
2. A run that finds the runtime directory owned by a live process starts its own Redis in a
   directory of its own, ``run-PID/`` inside it, says so, and removes only that directory's
   files (and the directory once empty) when it stops. Two runs never share an embedded Redis:
   each one's lifetime and configuration stay its own.
3. ``geoproxy state | top | set`` without a URL ask the owner of the runtime directory when it
   runs, else the only other running instance; with several and no owner they name them all
   and ask for ``--redis``. A URL file whose owner is dead is never used.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from geoproxy.runtime.embedded_redis import PID_NAME
from geoproxy.runtime.ownership import holder

URL_NAME = "redis.url"
OWN_DIR_PREFIX = "run-"


def runtime_dir() -> Path:
    """The runtime directory of this user's ``geoproxy run`` processes (rule 1), made private
    (mode 700) if absent."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"geoproxy-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def own_dir(base: Path, pid: int) -> Path:
    """The directory of a run that found ``base`` owned (rule 2)."""
    return base / f"{OWN_DIR_PREFIX}{pid}"


@dataclass(frozen=True, slots=True)
class Instance:
    """A running ``geoproxy run`` with an embedded Redis: its master's pid and Redis URL."""

    pid: int
    url: str
    directory: Path


def running_instances(base: Path) -> list[Instance]:
    """Every live instance under ``base``, the owner of ``base`` first (rule 3)."""
    found = []
    directories = [base, *sorted(base.glob(f"{OWN_DIR_PREFIX}*"))]
    for directory in directories:
        pid = holder(directory / PID_NAME)
        url_file = directory / URL_NAME
        if pid is None or not url_file.exists():
            continue
        url = url_file.read_text().strip()
        if url:
            found.append(Instance(pid, url, directory))
    return found


class AmbiguousInstance(LookupError):
    """Several instances run and none owns the runtime directory: the user must choose."""


def default_url(base: Path) -> str | None:
    """The Redis URL ``geoproxy state`` uses without ``--redis`` (rule 3); None when no
    instance runs. Raises ``AmbiguousInstance`` naming them when it cannot choose."""
    instances = running_instances(base)
    if not instances:
        return None
    if instances[0].directory == base or len(instances) == 1:
        return instances[0].url
    listed = "; ".join(f"pid {i.pid}: {i.url}" for i in instances)
    raise AmbiguousInstance(f"several `geoproxy run` are running ({listed})")
