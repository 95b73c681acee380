"""The fleet of the fault drill (tests/support/fault_drill.py): one redis-server, three demo
backends and two ``geoproxy run`` hosts on 127.0.0.1, and the kills the drill inflicts on them.

Rules:
- Every process goes through the caller's ``ProcessRegistry`` and is stopped by pid in
  ``FaultFleet.stop``; a kill is a SIGKILL by pid, and returns once the process has gone (every
  thread of it: its sockets are closed only then).
- The hosts share one configuration but for the bind port: leastconn over s1, s2, s3, active
  HTTP checks every ``inter``, passive observation (``observe layer7 error-limit 2 on-error
  mark-down``), ``retries 2`` and ``option redispatch``. ``GEOPROXY_HOSTNAME`` is hostA or
  hostB, so that worker ids and check leases name their host.
- What it reads from Redis it reads with a one-second timeout, and reads as empty (or None)
  while Redis does not answer.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis

from tests.support.backends import Backend, start_backends
from tests.support.ports import free_ports
from tests.support.processes import ProcessRegistry
from tests.support.proxy_process import ProxyProcess, children, start_proxy
from tests.support.redis_topologies import RedisNode, start_node

BACKEND = "app"
SERVERS = ("s1", "s2", "s3")
HOSTS = ("hostA", "hostB")
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 5s
    retries 2
    option redispatch

frontend main
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance leastconn
    option httpchk GET /health
    default-server check inter {inter} fastinter {inter} downinter 1s rise 2 fall 2 observe layer7 error-limit 2 on-error mark-down
    server s1 {s1}
    server s2 {s2}
    server s3 {s3}
"""  # noqa: E501


@dataclass(frozen=True, slots=True)
class DrillSettings:
    """How long and how hard: ``clients`` concurrent clients, each pausing ``pause`` s between
    two requests of ``path``; phases of ``phase_seconds``, the fault ``fault_after`` s in."""

    phase_seconds: float = 6.0
    fault_after: float = 1.5
    clients: int = 8
    pause: float = 0.01
    path: str = "/slow?ms=20"
    inter: str = "200ms"
    timeout: float = 10.0



class FaultFleet:
    """Redis, three backends, two hosts (see the module rules)."""

    def __init__(self, registry: ProcessRegistry, directory: Path, settings: DrillSettings) -> None:
        self.registry = registry
        self.directory = directory
        self.settings = settings
        self.redis_nodes: list[RedisNode] = []
        self.backends: dict[str, Backend] = {}
        self.hosts: list[ProxyProcess] = []
        self.redis_killed_at = 0.0

    def start(self) -> FaultFleet:
        """Start everything; returns once both hosts run two booted workers."""
        self.redis_nodes.append(start_node(self.registry, self.directory / "redis1"))
        started = start_backends(self.registry, self.directory / "backends", names=SERVERS)
        self.backends = {backend.name: backend for backend in started}
        addresses = {name: backend.address for name, backend in self.backends.items()}
        for name, port in zip(HOSTS, free_ports(len(HOSTS)), strict=True):
            config = CONFIG.format(port=port, inter=self.settings.inter, **addresses)
            work_dir = self.directory / name
            work_dir.mkdir(parents=True)
            env = {"GEOPROXY_HOSTNAME": name}
            host = start_proxy(
                self.registry, config, work_dir, self.redis_url, 2, outlive_test=True, env=env
            )
            self.hosts.append(host)
        for host in self.hosts:
            host.wait_for_workers(2)
        return self

    @property
    def redis_port(self) -> int:
        return self.redis_nodes[0].port

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ports(self) -> list[int]:
        return [host.port for host in self.hosts]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1
        )

    def read(self, what: Callable[[redis.Redis], object]) -> object:
        """``what(client)``, or None while Redis does not answer."""
        try:
            with self.client() as client:
                return what(client)
        except REDIS_ERRORS:
            return None

    # -- faults ----------------------------------------------------------------------------------

    def kill_redis(self) -> int:
        node = self.redis_nodes[-1]
        pid = node.pid
        node.kill()
        self.redis_killed_at = time.monotonic()
        return pid

    def restart_redis_empty(self) -> int:
        """A new redis-server on the same port, with nothing in it."""
        name = f"redis{len(self.redis_nodes) + 1}"
        node = start_node(self.registry, self.directory / name, port=self.redis_port, name=name)
        self.redis_nodes.append(node)
        return node.pid

    def kill_worker(self, host: int) -> int:
        """SIGKILL the first worker of ``host``; returns its pid once it has exited."""
        pid = self.hosts[host].worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        wait_gone([pid])
        return pid

    def kill_server(self, name: str) -> int:
        backend = self.backends[name]
        os.kill(backend.pid, signal.SIGKILL)
        backend.process.process.wait(timeout=10)
        return backend.pid

    def kill_host(self, host: int) -> list[int]:
        """SIGKILL the master and every worker of ``host`` at once; returns their pids once
        every one has exited."""
        master = self.hosts[host]
        pids = [master.pid, *sorted(children(master.pid))]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        master.process.process.wait(timeout=10)
        wait_gone(pids)
        return pids

    # -- what Redis says -----------------------------------------------------------------------

    def inflight(self) -> dict[str, int] | None:
        found = self.read(lambda c: c.hgetall(f"gp:{{{BACKEND}}}:inflight"))
        if found is None:
            return None
        return {k: int(v) for k, v in cast(dict[str, str], found).items()}

    def server_state(self, name: str) -> dict[str, str]:
        """The server's statistics and state hashes as one."""
        found = self.read(lambda c: {**c.hgetall(f"gp:{{{BACKEND}}}:stat:{name}"),
                                     **c.hgetall(f"gp:{{{BACKEND}}}:srv:{name}")})
        return cast(dict[str, str], found or {})

    def check_holders(self) -> dict[str, str | None]:
        found = self.read(lambda c: [c.get(f"gp:{{{BACKEND}}}:chk:{s}") for s in SERVERS])
        holders = cast(list[str | None], found or [None] * len(SERVERS))
        return dict(zip(SERVERS, holders, strict=True))

    def live_workers(self) -> list[str]:
        found = self.read(lambda c: c.zrange(f"gp:{{{BACKEND}}}:workers", 0, -1))
        return cast(list[str], found or [])

    def worker_hash_exists(self, worker: str) -> bool | None:
        found = self.read(lambda c: c.exists(f"gp:{{{BACKEND}}}:w:{worker}"))
        return None if found is None else bool(found)

    def rebuilt(self) -> bool:
        """Every server registered again, with its states, and four live workers."""
        servers = self.read(lambda c: c.zrange(f"gp:{{{BACKEND}}}:servers", 0, -1))
        if sorted(cast(list[str], servers or [])) != list(SERVERS):
            return False
        if not all(self.server_state(s).get("oper") for s in SERVERS):
            return False
        return len(self.live_workers()) == 2 * len(HOSTS)

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        for backend in self.backends.values():
            backend.stop()
        for node in self.redis_nodes:
            node.stop()


def wait_gone(pids: Sequence[int], timeout: float = 10.0) -> None:
    """Return once none of ``pids`` runs any more (gone, or a zombie: its sockets are closed);
    raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(_runs(pid) for pid in pids):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"processes {list(pids)} still run {timeout:g}s after SIGKILL")
        time.sleep(0.001)


def _runs(pid: int) -> bool:
    """Whether any thread of ``pid`` still runs: a process's sockets are closed only when its
    last thread exits, and its main thread may be a zombie before the others are done."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False
