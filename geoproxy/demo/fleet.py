"""Start and stop a few demo backends as child processes (``geoproxy run``'s demo mode).

Rules:
- Each backend is its own process (``python -m geoproxy.demo.backend``), started with this
  interpreter, and is ready once its port accepts a connection; waits are bounded.
- If one backend fails to come up, the ones already started are stopped before the error
  propagates: a failed start leaves nothing running.
- Stopping is by pid (SIGTERM, a bounded wait, then SIGKILL).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from geoproxy.runtime.embedded_redis import stop_child


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One demo backend to run: its name (``X-Server``) and where it listens."""

    name: str
    port: int
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class BackendProcess:
    """A running demo backend."""

    spec: BackendSpec
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return f"{self.spec.host}:{self.spec.port}"


class BackendStartError(RuntimeError):
    """A demo backend did not start accepting connections in time."""


def wait_for_port(
    host: str, port: int, timeout: float, alive: Callable[[], bool] | None = None
) -> None:
    """Return once ``host:port`` accepts a TCP connection.

    Raises TimeoutError after ``timeout`` seconds, or at once (ChildProcessError) when ``alive``
    says the process meant to listen there has gone.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if alive is not None and not alive():
            raise ChildProcessError(f"the process meant to listen on {host}:{port} has exited")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} in {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def backend_command(spec: BackendSpec) -> list[str]:
    """The command line that runs one demo backend with this interpreter."""
    return [
        sys.executable,
        "-m",
        "geoproxy.demo.backend",
        "--name",
        spec.name,
        "--port",
        str(spec.port),
        "--host",
        spec.host,
    ]


def start_backends(
    specs: Iterable[BackendSpec | tuple[str, int]],
    log_dir: Path | None = None,
    timeout: float = 10.0,
) -> list[BackendProcess]:
    """Start one process per spec (a BackendSpec, or a ``(name, port)`` pair on 127.0.0.1) and
    wait (up to ``timeout`` each) until each accepts connections.

    Output goes to ``log_dir/NAME.log`` when ``log_dir`` is given; otherwise stdout is dropped
    and stderr is inherited, so that a crash still shows.
    """
    started: list[BackendProcess] = []
    try:
        for spec in specs:
            if not isinstance(spec, BackendSpec):
                spec = BackendSpec(*spec)
            started.append(_spawn(spec, log_dir))
        for backend in started:
            _wait_ready(backend, timeout)
    except BaseException:
        stop_backends(started)
        raise
    return started


def stop_backends(backends: Iterable[BackendProcess], grace: float = 5.0) -> None:
    """Stop each backend by its pid: SIGTERM, up to ``grace`` seconds, then SIGKILL."""
    for backend in backends:
        stop_child(backend.process, grace)


def _spawn(spec: BackendSpec, log_dir: Path | None) -> BackendProcess:
    if log_dir is None:
        process = subprocess.Popen(
            backend_command(spec), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        return BackendProcess(spec, process, None)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            backend_command(spec), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return BackendProcess(spec, process, log_path)


def _wait_ready(backend: BackendProcess, timeout: float) -> None:
    try:
        wait_for_port(
            backend.spec.host, backend.spec.port, timeout, lambda: backend.process.poll() is None
        )
    except (TimeoutError, ChildProcessError) as exc:
        where = f"; see {backend.log_path}" if backend.log_path is not None else ""
        raise BackendStartError(f"demo backend {backend.spec.name}: {exc}{where}") from exc
