"""Tomcat-like instances (``geoproxy.demo.tomcat``) as real processes that a test can restart
(sessions lost, same port) and stop, and a registry for processes that live as long as a test
module (a proxy and its servers shared by the module's tests).

Rules:
- Processes of a ``module_processes()`` block are stopped by pid when the block ends, and by an
  ``atexit`` hook if pytest dies first; the per-test cleanup of ``conftest`` does not touch
  them.
- An instance keeps its port across restarts, as a restarted Tomcat does.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry

HOST = "127.0.0.1"


@contextmanager
def module_processes() -> Iterator[ProcessRegistry]:
    """A process registry whose processes are stopped when the ``with`` block ends."""
    registry = ProcessRegistry()
    atexit.register(registry.stop_all)
    try:
        yield registry
    finally:
        registry.stop_all()
        atexit.unregister(registry.stop_all)


@dataclass(eq=False)
class Tomcat:
    """One Tomcat-like instance named ``route`` on a fixed port."""

    route: str
    port: int
    registry: ProcessRegistry
    log_dir: Path
    process: ManagedProcess | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again) on its port; returns once the port accepts connections."""
        assert not self.is_running, f"{self.route} is already running"
        self.starts += 1
        argv = [sys.executable, "-m", "geoproxy.demo.tomcat", "--route", self.route]
        argv += ["--port", str(self.port), "--host", HOST]
        name = f"tomcat-{self.route}-{self.starts}"
        self.process = self.registry.start(name, argv, self.log_dir)
        wait_for_port(HOST, self.port, timeout, self.process.is_running)

    def stop(self) -> None:
        """Stop it (SIGTERM: every connection closes and every session is lost)."""
        if self.process is not None:
            self.process.stop()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_tomcats(
    registry: ProcessRegistry, log_dir: Path, routes: list[str]
) -> dict[str, Tomcat]:
    """One running instance per route, each on a free port."""
    instances = {}
    for route in routes:
        instance = Tomcat(route, free_port(), registry, log_dir)
        instance.start()
        instances[route] = instance
    return instances
