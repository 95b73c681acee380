"""Demo backends (geoproxy.demo.backend) as real processes on free loopback ports."""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geoproxy.demo.fleet import BackendSpec, backend_command
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP response, read whole."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lower = name.lower()
        return next((v for n, v in self.headers if n.lower() == lower), None)


@dataclass(frozen=True, slots=True)
class Backend:
    """A running demo backend: ``name`` is what it answers in ``X-Server``."""

    name: str
    port: int
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as a ``server`` line wants it."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
    ) -> Answer:
        """One request on a new connection, straight to the backend."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return Answer(response.status, response.getheaders(), response.read())
        finally:
            connection.close()

    def stats(self) -> dict[str, int]:
        """Its counters: accepted, connections, requests, in_flight, max_in_flight,
        health_checks (see geoproxy.demo.app)."""
        counters: dict[str, int | str] = json.loads(self.request("GET", "/stats").body)
        return {key: value for key, value in counters.items() if isinstance(value, int)}

    def reset_stats(self) -> None:
        self.request("GET", "/stats/reset")

    def fail_health(self) -> None:
        """From now on its health checks answer 503."""
        self.request("GET", "/health/fail")

    def pass_health(self) -> None:
        self.request("GET", "/health/ok")

    def stop(self) -> None:
        self.process.stop()


def start_backends(
    registry: ProcessRegistry,
    log_dir: Path,
    count: int = 2,
    names: Sequence[str] | None = None,
    timeout: float = 10.0,
    *,
    outlive_test: bool = False,
) -> list[Backend]:
    """Start ``count`` demo backends (named ``names``, else s1, s2, ...) on free ports and
    wait until each accepts connections. ``outlive_test`` backends are not stopped when the
    test ends (a module-scoped fixture stops them)."""
    names = list(names) if names is not None else [f"s{i}" for i in range(1, count + 1)]
    started: list[Backend] = []
    try:
        for name, port in zip(names, free_ports(len(names)), strict=True):
            argv = backend_command(BackendSpec(name, port, HOST))
            process = registry.start(f"backend-{name}", argv, log_dir, session=outlive_test)
            started.append(Backend(name, port, process))
        for backend in started:
            wait_for_port(HOST, backend.port, timeout, backend.process.is_running)
    except BaseException:
        for backend in started:
            backend.stop()
        raise
    return started
