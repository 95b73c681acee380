"""Runtime API clients for tests: socat one-shots (the real client scripts use), an HAProxy 2.6
started on the same configuration for differential tests, and Ansible's location."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.tools import tool_missing

SOCAT = shutil.which("socat")
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                      else None)


def ask(path: str, line: str, timeout: float = 10.0) -> str:
    """``echo LINE | socat stdio UNIX-CONNECT:PATH``: the whole answer, until the server closes."""
    if SOCAT is None:
        tool_missing("socat is not installed")
    done = subprocess.run([SOCAT, "-t", str(timeout), "stdio", f"UNIX-CONNECT:{path}"],
                          input=line + "\n", capture_output=True, text=True, timeout=timeout + 5)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for_socket(path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return
        except OSError:
            time.sleep(0.05)
        finally:
            probe.close()
    raise TimeoutError(f"nothing listens on {path}")


def start_haproxy(registry: ProcessRegistry, config_text: str, work_dir: Path,
                  socket_path: str) -> ManagedProcess:
    """HAProxy 2.6 in the foreground on ``config_text``; returns once its socket answers."""
    if HAPROXY is None:
        tool_missing("haproxy is not installed")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "haproxy.cfg"
    config.write_text(config_text)
    process = registry.start("haproxy", [HAPROXY, "-db", "-f", str(config)], work_dir,
                             session=True)
    wait_for_socket(socket_path)
    return process
