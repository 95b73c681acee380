"""geoproxy itself as a real process: ``python -m geoproxy run -c CFG --workers N --redis URL``.

The contract with ``geoproxy run``: it binds every ``bind`` of the configuration's frontends,
prints where it listens, and stops cleanly on SIGTERM. ``start_proxy`` waits (bounded) until
every bind port accepts connections and gunicorn's master runs (the configuration is then
registered in Redis).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry

_SECTION = re.compile(r"^\s*(global|defaults|frontend|backend|listen|userlist|peers)\b")
_BIND = re.compile(r"^\s*bind\s+(\S+)")
_ANY_ADDRESS = {"", "*", "0.0.0.0", "::", "[::]"}


@dataclass(frozen=True, slots=True)
class ProxyProcess:
    """A running geoproxy: ``binds`` are the (host, port) it listens on, in config order."""

    process: ManagedProcess
    config_path: Path
    binds: tuple[tuple[str, int], ...]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        """The first bind's port."""
        return self.binds[0][1]

    @property
    def url(self) -> str:
        host, port = self.binds[0]
        return f"http://{host}:{port}"

    def output(self) -> str:
        return self.process.output()

    def stop(self, grace: float = 10.0) -> int | None:
        return self.process.stop(grace)

    def worker_pids(self) -> list[int]:
        """The pids of gunicorn's worker processes (the master's children), sorted."""
        return sorted(children(self.pid))

    def wait_for_workers(self, count: int, timeout: float = 15.0) -> list[int]:
        """Return the worker pids once exactly ``count`` workers run and each has booted
        (logged ``Booting worker with pid: PID``)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            output = self.output()
            if len(pids) == count and all(
                f"Booting worker with pid: {pid}" in output for pid in pids
            ):
                return pids
            if time.monotonic() >= deadline or not self.process.is_running():
                raise TimeoutError(
                    f"geoproxy has workers {pids}, not {count} booted ones:\n{output}"
                )
            time.sleep(0.05)

    def send_signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)


def children(pid: int) -> set[int]:
    """The pids of the live children of ``pid`` (from /proc; empty once it has gone)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found.update(int(child) for child in listing.read().split())
        except FileNotFoundError:
            continue
    return found


def bind_addresses(config_text: str) -> list[tuple[str, int]]:
    """The (host, port) of every ``bind`` in frontend and listen sections; a wildcard host
    becomes 127.0.0.1 (tests only dial loopback)."""
    found: list[tuple[str, int]] = []
    section = ""
    for line in config_text.splitlines():
        line = line.split("#", 1)[0]
        opened = _SECTION.match(line)
        if opened:
            section = opened.group(1)
            continue
        bind = _BIND.match(line)
        if bind and section in ("frontend", "listen"):
            for address in bind.group(1).split(","):
                host, _, port = address.rpartition(":")
                host = "127.0.0.1" if host in _ANY_ADDRESS else host.strip("[]")
                found.append((host, int(port.split("-", 1)[0])))
    return found


class PortTaken(RuntimeError):
    """geoproxy could not bind a port chosen free: something (another test's connection, whose
    ephemeral port comes from the same range) took it between the choice and the bind."""


def start_proxy(
    registry: ProcessRegistry,
    config_text: str,
    work_dir: Path,
    redis_url: str,
    workers: int = 2,
    timeout: float = 30.0,
    *,
    outlive_test: bool = False,
    env: Mapping[str, str] | None = None,
) -> ProxyProcess:
    """Write ``config_text`` to ``work_dir/geoproxy.cfg``, run geoproxy on it and wait until
    every bind accepts connections; on failure the process is stopped and its output shown.
    An ``outlive_test`` proxy is not stopped when the test ends (a module-scoped fixture
    stops it)."""
    binds = bind_addresses(config_text)
    if not binds:
        raise ValueError("the configuration has no frontend bind to wait for")
    config_path = work_dir / "geoproxy.cfg"
    config_path.write_text(config_text)
    argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(config_path)]
    argv += ["--workers", str(workers), "--redis", redis_url]
    child_env = {**os.environ, **env} if env else None
    process = registry.start("geoproxy", argv, work_dir, env=child_env, session=outlive_test)
    try:
        for host, port in binds:
            wait_for_port(host, port, timeout, process.is_running)
        # geoproxy binds before it registers in Redis; gunicorn's master says it serves after
        process.wait_for_output("Listening at: ", timeout)
    except (TimeoutError, ChildProcessError) as exc:
        process.stop()
        output = process.output()
        failure = PortTaken if "Address already in use" in output else RuntimeError
        raise failure(f"geoproxy did not start: {exc}\n{output}") from exc
    return ProxyProcess(process, config_path, tuple(binds))
