"""Real Redis topologies on loopback for tests: a server with options (ACL users, TLS), a
three-master Cluster, a master with a replica watched by a Sentinel.

Rules:
- The binaries are ``redis-server`` (7.0 or later: ``--cluster-port``,
  ``--enable-debug-command``, ``busy-reply-threshold``) and ``redis-cli`` from the PATH (a
  Sentinel is ``redis-server FILE --sentinel``); a test module that needs them calls
  ``need_tools`` first, which skips it when they are missing or too old.
- Every server goes through a ``ProcessRegistry`` as a session process (a module fixture shares
  it) and is stopped by pid; ``kill`` sends SIGKILL, as a crash would.
- Servers keep nothing on disk but what Cluster and Sentinel must write (their own state files,
  in the test's directory), and only listen on 127.0.0.1.
- Every wait is bounded; a server that does not come up stops the test with its log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

from tests.support.ports import free_ports
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.tools import tool_missing

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def need_tools(*names: str) -> None:
    """Skip (under .ci/run: fail) the calling test module unless every tool is on the PATH
    (and redis-server is 7.0 or later)."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        tool_missing(f"not on the PATH: {', '.join(missing)}")
    if "redis-server" in names:
        version = server_version()
        if version < (7, 0):
            tool_missing(f"redis-server {version} is older than 7.0")


def server_version() -> tuple[int, ...]:
    """redis-server's version, from ``redis-server --version`` (``... v=7.0.15 ...``)."""
    output = subprocess.run(
        [shutil.which("redis-server") or "redis-server", "--version"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    found = re.search(r"v=(\d+)\.(\d+)", output)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 that it signed."""

    ca: Path
    cert: Path
    key: Path

    def query(self) -> str:
        """The URL query that makes a client trust this CA."""
        return f"ssl_ca_certs={quote(str(self.ca), safe='')}"


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate the CA and server certificate with the ``openssl`` command (EC keys: fast)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1"]
        + ["-subj", "/CN=geoproxy test CA"],
        ["openssl", "req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
        + ["-out", cert, "-days", "1", "-extfile", extensions],
    ]
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True, timeout=30)
    return TlsFiles(ca, cert, key)


@dataclass(eq=False)
class RedisNode:
    """One running redis-server (or Sentinel): ``port`` is the one its clients use."""

    process: ManagedProcess
    port: int
    directory: Path
    client_options: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def client(self, **options: object) -> redis.Redis:
        """A plain redis-py client of this one node (its credentials and TLS included)."""
        merged = {**self.client_options, **options}
        return redis.Redis(host=HOST, port=self.port, decode_responses=True, **merged)  # type: ignore[arg-type]

    def is_running(self) -> bool:
        return self.process.is_running()

    def kill(self) -> None:
        """SIGKILL, as a crash; returns once the process is gone."""
        if self.process.is_running():
            os.kill(self.pid, signal.SIGKILL)
            self.process.process.wait(timeout=10)
        self.process.stop()

    def stop(self) -> None:
        self.process.stop()

    def output(self) -> str:
        return self.process.output()


def start_node(
    registry: ProcessRegistry,
    directory: Path,
    options: Sequence[str] = (),
    *,
    port: int | None = None,
    name: str = "redis",
    client_options: Mapping[str, object] | None = None,
) -> RedisNode:
    """Start a redis-server on 127.0.0.1:``port`` (a free one if None) with ``options`` (its
    command-line configuration, e.g. ``["--user", "geo", "on", ">pw", "+@all"]``), and return
    once it answers PING through ``client_options``. ``options`` may replace the port (TLS)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(port)]
    argv += ["--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(directory)]
    argv += ["--enable-debug-command", "local", "--loglevel", "notice", *options]
    process = registry.start(name, argv, directory, session=True)
    node = RedisNode(process, port, directory, dict(client_options or {}))
    wait_until(lambda: _answers(node), START_TIMEOUT, f"{name} to answer PING", node)
    return node


def start_tls_node(
    registry: ProcessRegistry, directory: Path, tls: TlsFiles, options: Sequence[str] = ()
) -> RedisNode:
    """A server that only speaks TLS (``--port 0``), on a free TLS port."""
    port = free_ports(1)[0]
    tls_options = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert)]
    tls_options += ["--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca)]
    tls_options += ["--tls-auth-clients", "no", *options]
    client = {"ssl": True, "ssl_ca_certs": str(tls.ca)}
    credentials = _credentials(options)
    return start_node(
        registry,
        directory,
        tls_options,
        port=port,
        name="redis-tls",
        client_options={**client, **credentials},
    )


def _credentials(options: Sequence[str]) -> dict[str, object]:
    """The first ACL user with a password among ``--user NAME on >PASSWORD ...`` options."""
    for i, option in enumerate(options):
        if option == "--user" and i + 3 < len(options) and options[i + 2] == "on":
            password = options[i + 3]
            if password.startswith(">"):
                return {"username": options[i + 1], "password": password[1:]}
    return {}


def _answers(node: RedisNode) -> bool:
    if not node.is_running():
        raise ChildProcessError(f"redis-server exited:\n{node.output()}")
    try:
        with node.client(socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, node: RedisNode | None = None
) -> None:
    """Poll ``condition`` until true; raise after ``timeout`` seconds, with the node's log."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            log = f":\n{node.output()}" if node is not None else ""
            raise TimeoutError(f"waited {timeout:g}s for {what}{log}")
        time.sleep(0.05)


# -- Cluster ----------------------------------------------------------------------------------


def start_cluster(registry: ProcessRegistry, directory: Path, masters: int = 3) -> list[RedisNode]:
    """``masters`` cluster nodes joined by ``redis-cli --cluster create`` (no replicas); returns
    once every node reports ``cluster_state:ok``."""
    ports = free_ports(2 * masters)  # a client port and a cluster bus port each
    nodes = []
    try:
        for port, bus in zip(ports[:masters], ports[masters:], strict=True):
            options = ["--cluster-enabled", "yes", "--cluster-port", str(bus)]
            options += ["--cluster-config-file", f"nodes-{port}.conf"]
            options += ["--cluster-node-timeout", "2000"]
            nodes.append(
                start_node(registry, directory / str(port), options, port=port, name="cluster")
            )
        create = [shutil.which("redis-cli") or "redis-cli", "--cluster", "create"]
        create += [node.address for node in nodes]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        for node in nodes:
            wait_until(lambda node=node: _cluster_ok(node), 20, "cluster_state:ok", node)  # type: ignore[misc]
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


def _cluster_ok(node: RedisNode) -> bool:
    with node.client(socket_timeout=1) as client:
        info = client.execute_command("CLUSTER", "INFO")
    return "cluster_state:ok" in str(info)


# -- Sentinel ---------------------------------------------------------------------------------


@dataclass(eq=False)
class SentinelGroup:
    """A master, its replica and one Sentinel (quorum 1) that watches them as ``service``."""

    master: RedisNode
    replica: RedisNode
    sentinel: RedisNode
    service: str

    @property
    def url(self) -> str:
        return f"redis+sentinel://{self.sentinel.address}/{self.service}/0"

    def master_port(self) -> int:
        """The master's port as the Sentinel names it now."""
        with self.sentinel.client(socket_timeout=1) as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(port)

    def stop(self) -> None:
        for node in (self.sentinel, self.replica, self.master):
            node.stop()


def start_sentinel_group(
    registry: ProcessRegistry, directory: Path, service: str = "geo"
) -> SentinelGroup:
    """Returns once the replica is in sync and the Sentinel knows it (so it can fail over)."""
    # A diskless sync waits 5 s for more replicas by default; there is only one.
    master = start_node(
        registry, directory / "master", ["--repl-diskless-sync-delay", "0"], name="master"
    )
    started = [master]
    try:
        replica = start_node(
            registry,
            directory / "replica",
            ["--replicaof", HOST, str(master.port)],
            name="replica",
        )
        started.append(replica)
        wait_until(lambda: _in_sync(replica), START_TIMEOUT, "the replica's sync", replica)
        sentinel = _start_sentinel(registry, directory / "sentinel", master, service)
        started.append(sentinel)
        group = SentinelGroup(master, replica, sentinel, service)
        wait_until(lambda: _knows_replica(group), 15, "the Sentinel to see the replica", sentinel)
    except BaseException:
        for node in started:
            node.stop()
        raise
    return group


def _start_sentinel(
    registry: ProcessRegistry, directory: Path, master: RedisNode, service: str
) -> RedisNode:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_ports(1)[0]
    config = directory / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind {HOST}\ndir {directory}\n"
        f"sentinel monitor {service} {HOST} {master.port} 1\n"
        f"sentinel down-after-milliseconds {service} 500\n"
        f"sentinel failover-timeout {service} 5000\n"
        f"sentinel parallel-syncs {service} 1\n"
    )
    argv = [shutil.which("redis-server") or "redis-server", str(config), "--sentinel"]
    process = registry.start("sentinel", argv, directory, session=True)
    node = RedisNode(process, port, directory)
    wait_until(lambda: _answers(node), START_TIMEOUT, "the Sentinel to answer PING", node)
    return node


def _in_sync(replica: RedisNode) -> bool:
    with replica.client(socket_timeout=1) as client:
        info = client.info("replication")
    return bool(info.get("master_link_status") == "up")


def _knows_replica(group: SentinelGroup) -> bool:
    with group.sentinel.client(socket_timeout=1) as client:
        replicas = client.execute_command("SENTINEL", "REPLICAS", group.service)
    for replica in replicas:
        fields = (
            dict(zip(replica[::2], replica[1::2], strict=True))
            if isinstance(replica, list)
            else replica
        )
        flags = str(fields.get("flags", ""))
        if fields.get("port") == str(group.replica.port) and "disconnected" not in flags:
            return "s_down" not in flags
    return False
