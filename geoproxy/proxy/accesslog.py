"""Where a frontend's request lines go: its ``log`` targets (``log global`` and its own), else
standard output when it has ``option httplog``, as geoproxy's default.

Rules:
1. A line is written without waiting: stdout/stderr lines are buffered and written at most
   ``FLUSH_EVERY`` seconds later (or at once when the buffer holds ``FLUSH_LINES``), syslog
   lines are single UDP/unix datagrams in HAProxy's rfc3164 shape
   (``<PRI>Mmm dd hh:mm:ss geoproxy[PID]: LINE``), level info as HAProxy logs requests.
2. A target that cannot be written to loses the line, never the request.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence

from geoproxy.config.kw_log import FACILITIES
from geoproxy.config.model import LogTarget

FLUSH_EVERY = 0.2
FLUSH_LINES = 64
_INFO = 6
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Stream:
    """stdout or stderr, buffered (rule 1)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        try:
            with self._lock:
                while data:
                    data = data[os.write(self._fd, data) :]
        except OSError:
            pass  # rule 2


class _Syslog:
    """One syslog target: a unix datagram socket or UDP."""

    def __init__(self, target: LogTarget) -> None:
        self._pri = FACILITIES.index(target.facility) * 8 + _INFO
        self._tag = f"geoproxy[{os.getpid()}]"
        address = target.address
        if address.startswith("/"):
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._to: str | tuple[str, int] = address
        else:
            for prefix in ("udp@", "udp4@", "ipv4@", "udp6@", "ipv6@"):
                address = address.removeprefix(prefix)
            host, port = address, ""
            if address.count(":") == 1 or address.startswith("["):
                host, _, port = address.rpartition(":")
            self._to = (host.strip("[]"), int(port or 514))
            family = socket.AF_INET6 if ":" in self._to[0] else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def write(self, line: str) -> None:
        now = time.localtime()
        clock = f"{now.tm_hour:02d}:{now.tm_min:02d}:{now.tm_sec:02d}"
        stamp = f"{_MONTHS[now.tm_mon - 1]} {now.tm_mday:2d} {clock}"
        try:
            self._sock.sendto(f"<{self._pri}>{stamp} {self._tag}: {line}".encode(), self._to)
        except OSError:
            pass  # rule 2

    def flush(self) -> None:
        pass


_stdout = _Stream(1)
_stderr = _Stream(2)
_flusher_pid = 0  # the process whose flusher runs (a forked worker starts its own)


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY)
        _stdout.flush()
        _stderr.flush()


class AccessLog:
    """The destinations of one frontend's request lines."""

    def __init__(self, targets: Sequence[LogTarget], default_stdout: bool) -> None:
        sinks: list[_Stream | _Syslog] = []
        for target in targets:
            if target.address in ("stdout", "fd@1"):
                sinks.append(_stdout)
            elif target.address in ("stderr", "fd@2"):
                sinks.append(_stderr)
            else:
                sinks.append(_Syslog(target))
        if not sinks and default_stdout:
            sinks.append(_stdout)
        self._sinks = tuple(sinks)

    @property
    def enabled(self) -> bool:
        return bool(self._sinks)

    def write(self, line: str) -> None:
        global _flusher_pid
        if _flusher_pid != os.getpid():
            _flusher_pid = os.getpid()
            threading.Thread(target=_flush_forever, name="geoproxy-log", daemon=True).start()
        for sink in self._sinks:
            sink.write(line)


def flush_all() -> None:
    """Write what is buffered now (a worker that exits)."""
    _stdout.flush()
    _stderr.flush()
