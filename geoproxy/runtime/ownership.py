"""Who owns a runtime directory: a pid file held under an exclusive ``flock(2)``.

Rules:
1. A process owns a directory while it holds the lock on the directory's pid file; the file
   holds its pid, for people and for messages. The kernel drops the lock when the process ends,
   however it ends (a SIGKILL included), so a lock nobody holds is a dead owner's, never a live
   one's.
2. Only the owner removes the files of the directory, and only while it holds the lock: it
   unlinks the pid file before it lets go, and a newcomer that locked a file unlinked meanwhile
   tries again with the new one, so two processes never both believe they own one directory.
3. ``holder`` only looks: it never changes a file and never takes the lock for longer than the
   look itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

_CLAIM_ATTEMPTS = 3


class PidFile:
    """A pid file this process holds the lock on (module rules). Release it with ``release``."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def claim(cls, path: Path) -> PidFile | None:
        """Lock ``path`` (created if absent) and write this process's pid into it; None when
        another live process holds it."""
        for _ in range(_CLAIM_ATTEMPTS):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            if _same_file(fd, path):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return cls(path, fd)
            os.close(fd)  # its owner removed it between our open and our lock (rule 2)
        return None

    def release(self) -> None:
        """Remove the file, then let go of the lock (rule 2). Safe to call more than once."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if _same_file(self._fd, self.path):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def holder(path: Path) -> int | None:
    """The pid written in ``path`` when a live process holds its lock (0 if it has not written
    it yet), else None (no file, or a dead owner's file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
