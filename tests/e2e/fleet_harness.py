"""A fleet for the health and capacity tests: one private Redis, demo backends, and several
``geoproxy run`` processes ("hosts") sharing that Redis, each with its gunicorn workers.

A module starts one ``Fleet`` (module-scoped fixture ``fleet``) and its tests share it, so the
second-long start of a geoproxy is paid once per module; a test that changes a server's state
puts it back (``Fleet.reset``). Every process is stopped by pid when the module ends.

Helpers here wait with a bound on time (``wait_until``), count who served what (``tally``),
and run the ``geoproxy`` command line as an operator would (``cli``).
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import redis

from geoproxy.demo.fleet import BackendSpec, backend_command
from geoproxy.runtime.embedded_redis import EmbeddedRedis
from tests.support.backends import Answer, Backend
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ROOT, ProcessRegistry

HOST = "127.0.0.1"


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> float:
    """Poll ``predicate`` until it is true; return the seconds it took. Fails the test with
    ``what`` after ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {timeout:g}s: {what}")
        time.sleep(interval)


def request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One request on a new connection to geoproxy (or a backend) on 127.0.0.1:``port``."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def tally(ports: Iterable[int], per_port: int, path: str = "/") -> Counter[str]:
    """Send ``per_port`` requests to each port, each on a new connection (so gunicorn hands
    them to any of its workers); count the answers by ``X-Server`` (or ``status N``)."""
    counted: Counter[str] = Counter()
    for port in ports:
        for _ in range(per_port):
            answer = request(port, path)
            counted[answer.header("X-Server") or f"status {answer.status}"] += 1
    return counted


def children(pid: int) -> list[int]:
    """The live children of ``pid`` (a geoproxy master's are its gunicorn workers)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found += [int(child) for child in listing.read().split()]
        except FileNotFoundError:
            continue
    return sorted(found)


def _server_side_inode(port: int, client_port: int) -> int:
    """The inode of the accepted socket 127.0.0.1:``port`` <- 127.0.0.1:``client_port``
    (0 while no process has accepted it yet)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            ports = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
            if ports == (port, client_port):
                return inode
    return 0


def _owner(pids: Iterable[int], inode: int) -> int | None:
    """Which of ``pids`` holds the socket ``inode``."""
    wanted = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                    return pid
            except FileNotFoundError:
                continue
    return None


class WorkerLine:
    """A keep-alive connection known to be served by one gunicorn worker (``pid``): every
    request on it is routed by that worker's snapshot of the fleet."""

    def __init__(self, pid: int, connection: http.client.HTTPConnection) -> None:
        self.pid = pid
        self._connection = connection
        self._socket = connection.sock

    def get(self, path: str = "/", headers: Mapping[str, str] | None = None) -> Answer:
        self._connection.request("GET", path, headers=dict(headers or {}))
        response = self._connection.getresponse()
        answer = Answer(response.status, response.getheaders(), response.read())
        if self._connection.sock is not self._socket or self._socket is None:
            raise AssertionError(f"worker {self.pid} closed the keep-alive connection")
        return answer

    def served_by(
        self, count: int, path: str = "/", headers: Mapping[str, str] | None = None
    ) -> Counter[str]:
        """Send ``count`` requests on this connection; count them by ``X-Server``."""
        counted: Counter[str] = Counter()
        for _ in range(count):
            answer = self.get(path, headers)
            counted[answer.header("X-Server") or f"status {answer.status}"] += 1
        return counted

    def close(self) -> None:
        self._connection.close()


@dataclass
class Stream:
    """A long response (``/bytes/SIZE`` of backend ``backend``, by ``X-Backend``) read by a
    client thread at a steady pace until it ends; ``stop`` ends the reading."""

    SIZE: ClassVar[int] = 2_000_000_000

    port: int
    backend: str
    received: int = 0
    ended_at: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        sock = socket.create_connection((HOST, self.port), timeout=10)
        head = f"GET /bytes/{self.SIZE} HTTP/1.1\r\nHost: t\r\nX-Backend: {self.backend}\r\n\r\n"
        sock.sendall(head.encode())
        threading.Thread(target=self._read, args=(sock,), daemon=True).start()

    def _read(self, sock: socket.socket) -> None:
        try:
            while not self.stop.is_set():
                data = sock.recv(65536)
                if not data:
                    break
                self.received += len(data)
                time.sleep(0.005)
        except OSError:
            pass
        finally:
            self.ended_at = time.monotonic()
            sock.close()


@dataclass(frozen=True, slots=True)
class Host:
    """One ``geoproxy run`` process: its master pid, where it listens, its log."""

    pid: int
    port: int
    log: Path
    stop: Callable[[], object]

    def workers(self) -> list[int]:
        return children(self.pid)

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log.exists() else ""

    def booted(self, count: int) -> bool:
        """True when ``count`` workers run and each has finished booting."""
        pids, output = self.workers(), self.output()
        return len(pids) == count and all(f"Booting worker with pid: {p}" in output for p in pids)

    def worker_lines(self, attempts: int = 60) -> list[WorkerLine]:
        """One keep-alive connection to each worker of this host (new connections land on
        whichever worker accepts first, so a few are opened and the spare ones closed)."""
        workers = self.workers()
        lines: dict[int, WorkerLine] = {}
        for _ in range(attempts):
            connection = http.client.HTTPConnection(HOST, self.port, timeout=10.0)
            connection.request("GET", "/")
            connection.getresponse().read()
            assert connection.sock is not None
            inode = _server_side_inode(self.port, connection.sock.getsockname()[1])
            pid = _owner(workers, inode) if inode else None
            if pid is None or pid in lines:
                connection.close()
            else:
                lines[pid] = WorkerLine(pid, connection)
            if len(lines) == len(workers):
                return list(lines.values())
        for line in lines.values():
            line.close()
        raise AssertionError(f"no connection to every worker of {workers} in {attempts} tries")


class Fleet:
    """One module's Redis, backends and geoproxy hosts (see the module docstring)."""

    def __init__(self, registry: ProcessRegistry, directory: Path) -> None:
        self._registry = registry
        self._directory = directory
        self._redis = EmbeddedRedis().start()
        self.redis_url: str = self._redis.url
        self.redis = redis.Redis.from_url(self.redis_url, decode_responses=True)
        self._stops: list[Callable[[], object]] = []
        self.backends: dict[str, Backend] = {}
        self.hosts: list[Host] = []

    def start_backends(self, names: Sequence[str]) -> list[Backend]:
        started = []
        for name, port in zip(names, free_ports(len(names)), strict=True):
            argv = backend_command(BackendSpec(name, port, HOST))
            process = self._registry.start(
                f"backend-{name}", argv, self._directory / "backends", session=True
            )
            self._stops.append(process.stop)
            backend = Backend(name, port, process)
            self.backends[name] = backend
            started.append(backend)
        for backend in started:
            wait_for_port(HOST, backend.port, 10.0, backend.process.is_running)
        return started

    def start_hosts(
        self,
        config: str,
        count: int = 2,
        workers: int = 2,
        addresses: Mapping[str, str] | None = None,
    ) -> list[Host]:
        """Start ``count`` geoproxy processes on ``config`` (a template whose ``{port}`` is
        the bind port and ``{NAME}`` each backend's address, or one of ``addresses``), all on
        this fleet's Redis, and wait until each listens and runs ``workers`` workers."""
        known = {name: backend.address for name, backend in self.backends.items()}
        addresses = {**known, **(addresses or {})}
        started = []
        for port in free_ports(count):
            work_dir = self._directory / f"host{len(self.hosts) + 1}"
            work_dir.mkdir()
            config_path = work_dir / "geoproxy.cfg"
            config_path.write_text(config.format(port=port, **addresses))
            argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(config_path)]
            argv += ["--workers", str(workers), "--redis", self.redis_url]
            process = self._registry.start("geoproxy", argv, work_dir, session=True)
            self._stops.append(process.stop)
            host = Host(process.pid, port, process.log_path, process.stop)
            self.hosts.append(host)
            started.append((host, process.is_running))
        for host, alive in started:
            wait_for_port(HOST, host.port, 30.0, alive)
            wait_until(
                lambda host=host: host.booted(workers),  # type: ignore[misc]
                15.0,
                f"geoproxy {host.pid} runs {workers} workers",
            )
        return [host for host, _ in started]

    @property
    def redis_pid(self) -> int:
        return self._redis.pid

    @property
    def ports(self) -> list[int]:
        return [host.port for host in self.hosts]

    def server(self, name: str, backend: str = "app") -> dict[str, str]:
        """The server's statistics and state hashes as one (``redis-cli HGETALL
        'gp:{app}:stat:NAME'`` and ``'gp:{app}:srv:NAME'``)."""
        stats = self.redis.hgetall(f"gp:{{{backend}}}:stat:{name}")
        state = self.redis.hgetall(f"gp:{{{backend}}}:srv:{name}")
        return cast(dict[str, str], {**stats, **state})

    def oper(self, name: str, backend: str = "app") -> str | None:
        return self.server(name, backend).get("oper")

    def checker_pid(self, name: str, backend: str = "app") -> int | None:
        """The pid in the check lease of server ``name`` (its value is ``HOST:PID``)."""
        holder = cast(str | None, self.redis.get(f"gp:{{{backend}}}:chk:{name}"))
        return int(holder.rsplit(":", 1)[1]) if holder else None

    def cli(self, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run ``python -m geoproxy ARGS --redis URL`` and return what it did."""
        argv = [sys.executable, "-m", "geoproxy", *args, "--redis", self.redis_url]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        return subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def state(self) -> tuple[str, dict[str, dict[str, dict[str, str]]]]:
        """``geoproxy state``'s output, and its rows: backend -> server -> column -> cell."""
        printed = self.cli("state")
        assert printed.returncode == 0, printed.stderr
        return printed.stdout, parse_state(printed.stdout)

    def stop(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self.redis.close()
        self._redis.stop()


def parse_state(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """The tables ``geoproxy state`` prints, cut at the header's column starts (cells are
    left-justified to their column's width, and may hold blanks)."""
    tables: dict[str, dict[str, dict[str, str]]] = {}
    rows: dict[str, dict[str, str]] = {}
    starts: list[tuple[str, int]] = []
    for line in text.splitlines():
        if line.startswith("backend "):
            rows = tables.setdefault(line.split()[1], {})
            starts = []
        elif line.strip().startswith("server ") and not starts:
            starts = [(m.group(), m.start()) for m in re.finditer(r"\S+", line)]
        elif line.strip() and starts:
            ends = [start for _, start in starts[1:]] + [len(line)]
            cells = {
                name: line[start:end].strip()
                for (name, start), end in zip(starts, ends, strict=True)
            }
            rows[cells["server"]] = cells
    return tables


@contextmanager
def running_fleet(
    registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """A ``Fleet`` for a module-scoped fixture; everything it started is stopped on exit."""
    started = Fleet(registry, tmp_path_factory.mktemp("fleet"))
    try:
        yield started
    finally:
        started.stop()
