"""``mode tcp`` end to end: real TCP servers behind ``geoproxy run`` (gevent workers), one
configuration that mixes TCP frontends with an HTTP one, and a second host on the same Redis.

HAProxy configuration manual: ``mode tcp``; ``balance leastconn`` (connections counted for
their whole life, here fleet-wide); ``tcp-request inspect-delay`` and ``tcp-request content``
with ``req.ssl_hello_type`` and ``req.ssl_sni`` (SNI passthrough: the certificate the client
checks is the backend's); ``send-proxy``/``send-proxy-v2`` and ``accept-proxy`` (the PROXY
protocol); ``maxconn`` with ``timeout queue``; ``option redis-check``; ``on-marked-down
shutdown-sessions``; ``option tcplog``; the stats CSV and Prometheus rows. The servers are
processes of ``tests/support/tcp_servers.py`` and real ``redis-server`` binaries.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import redis

from tests.e2e.conftest import Stack
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.proxy_process import ProxyProcess
from tests.support.stats_client import StatsClient
from tests.support.tcp_servers import TcpServer, start_tcp_servers
from tests.support.tools import tool_missing

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
SNAPSHOT_PERIOD = 0.7  # workers reload server states twice a second
CONFIG = """\
defaults
    mode tcp
    timeout connect 1s
    timeout client 20s
    timeout server 20s

frontend echo_in
    bind {host}:{echo_in}
    option tcplog
    default_backend echo

backend echo
    balance leastconn
    server e1 {e1}
    server e2 {e2}

frontend sni_in
    bind {host}:{sni_in}
    tcp-request inspect-delay 3s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend tls_two if {{ req.ssl_sni -m end .two.test }}
    default_backend tls_one

backend tls_one
    server t1 {t1}

backend tls_two
    server t2 {t2}

frontend pp_in
    bind {host}:{pp_in} accept-proxy
    default_backend pp_v1

backend pp_v1
    server pp {pp} send-proxy

frontend pp2_in
    bind {host}:{pp2_in}
    default_backend pp_v2

backend pp_v2
    server pp {pp} send-proxy-v2

frontend queue_in
    bind {host}:{queue_in}
    default_backend queue

backend queue
    timeout queue 1s
    server e3 {e3} maxconn 1

frontend redis_in
    bind {host}:{redis_in}
    default_backend redis

backend redis
    option redis-check
    server r1 {host}:{r1} check inter 200ms rise 1 fall 1
    server r2 {host}:{r2} check inter 200ms rise 1 fall 1

frontend cut_in
    bind {host}:{cut_in}
    default_backend cut

backend cut
    server e4 {e4} check port {h4} inter 200ms rise 1 fall 1 on-marked-down shutdown-sessions

frontend web
    mode http
    bind {host}:{web} accept-proxy
    option forwardfor
    tcp-request connection reject if {{ src 192.0.2.0/24 }}
    tcp-request content reject if {{ path_beg /private }}
    default_backend app

backend app
    mode http
    server a1 {a1}

listen stats
    mode http
    bind {host}:{stats}
    stats uri /
"""
FRONTENDS = ("echo_in", "sni_in", "pp_in", "pp2_in", "queue_in", "redis_in", "cut_in", "web",
             "stats")


@dataclass
class Scene:
    ports: dict[str, int]
    servers: dict[str, TcpServer]
    redis_servers: dict[str, ManagedProcess]
    proxy: ProxyProcess
    stack: Stack
    registry: ProcessRegistry
    certs: dict[str, Path]
    client: redis.Redis
    second: ProxyProcess | None = None
    second_ports: dict[str, int] | None = None

    def inflight(self, backend: str) -> dict[str, int]:
        counts = cast(dict[str, str], self.client.hgetall(f"gp:{{{backend}}}:inflight"))
        return {name: int(value) for name, value in counts.items() if int(value)}

    def oper(self, backend: str, server: str) -> str:
        return cast(str, self.client.hget(f"gp:{{{backend}}}:srv:{server}", "oper"))


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.settimeout(5)
    return sock


def read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def make_cert(directory: Path, name: str) -> Path:
    """A self-signed certificate and key for ``name`` (one PEM file each)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True, timeout=30)
    return cert


def start_redis(registry: ProcessRegistry, directory: Path, name: str, port: int) -> ManagedProcess:
    binary = shutil.which("redis-server")
    assert binary is not None
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--dir", str(directory)]
    process = registry.start(f"redis-{name}", argv, directory, session=True)
    wait_for_port(HOST, port, 10.0, process.is_running)
    return process


@pytest.fixture(scope="module")
def scene(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Scene]:
    for tool in ("openssl", "redis-server"):
        if shutil.which(tool) is None:
            tool_missing(f"{tool} is not installed")
    directory = module_stack.directory
    logs = directory / "servers"
    certs = {name: make_cert(directory, name) for name in ("one.test", "x.two.test")}

    specs: list[tuple[str, ...]] = [("echo", name) for name in ("e1", "e2", "e3", "e4", "h4")]
    specs.append(("proxy", "pp"))
    for name, cert in (("t1", "one.test"), ("t2", "x.two.test")):
        specs.append(("tls", name, str(certs[cert]), str(certs[cert].with_suffix(".key"))))
    started = start_tcp_servers(process_registry, logs, specs, outlive_test=True)
    servers = {server.name: server for server in started}
    redis_ports = dict(zip(("r1", "r2"), free_ports(2), strict=True))
    redis_servers = {name: start_redis(process_registry, directory / name, name, port)
                     for name, port in redis_ports.items()}
    app = module_stack.backends(1, names=["a1"])[0]
    ports = dict(zip(FRONTENDS, free_ports(len(FRONTENDS)), strict=True))
    text = config_text(ports, servers, redis_ports, app.address)
    proxy = module_stack.proxy(text)
    client = redis.Redis.from_url(module_stack.redis_url, decode_responses=True)
    try:
        yield Scene(ports | {k: v for k, v in redis_ports.items()}, servers, redis_servers,
                    proxy, module_stack, process_registry, certs, client)
    finally:
        client.close()
        for process in redis_servers.values():
            process.stop()
        for running in servers.values():
            running.stop()


def config_text(ports: dict[str, int], servers: dict[str, TcpServer],
                redis_ports: dict[str, int], app: str) -> str:
    addresses = {name: running.address for name, running in servers.items()}
    addresses["h4"] = str(servers["h4"].port)
    return CONFIG.format(host=HOST, **ports, **addresses, **redis_ports, a1=app)


# -- balancing, fleet-wide -------------------------------------------------------------------


def test_leastconn_balances_long_lived_connections_across_two_hosts(scene: Scene) -> None:
    """Two ``geoproxy run`` hosts on one Redis count each other's connections: 100 opened
    alternately end up balanced. Then host A keeps its connections on one server only and host
    B's own are even: new connections through B alone must go to the other server until the
    fleet is even again (a per-host count, HAProxy's, would see B even and split them)."""
    second_ports = dict(zip(FRONTENDS, free_ports(len(FRONTENDS)), strict=True))
    redis_ports = {name: scene.ports[name] for name in ("r1", "r2")}
    app = scene.stack.backends(1, names=["a2"])[0]
    second = scene.stack.proxy(config_text(second_ports, scene.servers, redis_ports,
                                           app.address))
    hosts = (scene.ports["echo_in"], second_ports["echo_in"])
    opened: list[tuple[int, str, socket.socket]] = []

    def counts(host: int | None = None) -> dict[str, int]:
        found = {name: sum(1 for h, n, _ in opened if n == name and host in (None, h))
                 for name in ("e1", "e2")}
        return {name: count for name, count in found.items() if count}

    def close(host: int, name: str, keep: int = 0) -> None:
        victims = [entry for entry in opened if entry[0] == host and entry[1] == name]
        for entry in victims[keep:]:
            entry[2].close()
            opened.remove(entry)

    try:
        for index in range(100):
            sock = connect(hosts[index % 2])
            opened.append((index % 2, read_line(sock).strip(), sock))
        assert max(counts().values()) <= 51, counts()
        wait_until(lambda: scene.inflight("echo") == counts(), 3, f"Redis counts {counts()}")
        on_a = counts(0)
        close(0, min(("e1", "e2"), key=lambda name: on_a.get(name, 0)))  # A: one server only
        on_b = counts(1)
        even = min(on_b.get("e1", 0), on_b.get("e2", 0))
        close(1, "e1", keep=even)
        close(1, "e2", keep=even)  # B's own connections: even
        before = counts()
        wait_until(lambda: scene.inflight("echo") == before, 3, f"released down to {before}")
        gap = abs(before.get("e1", 0) - before.get("e2", 0))
        assert gap >= 25, before
        for _ in range(gap + 10):
            sock = connect(hosts[1])
            opened.append((1, read_line(sock).strip(), sock))
        final = counts()
        assert abs(final.get("e1", 0) - final.get("e2", 0)) <= 2, (before, final)
    finally:
        for _, _, sock in opened:
            sock.close()
        second.stop()
    wait_until(lambda: not scene.inflight("echo"), 5, "every connection given back")


# -- tcp-request content and SNI passthrough ----------------------------------------------------


def tls_hello(scene: Scene, name: str, cert: str) -> str:
    context = ssl.create_default_context(cafile=str(scene.certs[cert]))
    with connect(scene.ports["sni_in"]) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        return read_line(tls).strip()


def test_sni_passthrough_routes_by_the_client_hellos_server_name(scene: Scene) -> None:
    assert tls_hello(scene, "one.test", "one.test") == "t1 one.test"
    assert tls_hello(scene, "x.two.test", "x.two.test") == "t2 x.two.test"


def test_what_is_not_a_tls_hello_goes_at_once_to_the_default_backend(scene: Scene) -> None:
    def total() -> int:
        return int(scene.client.hget("gp:{tls_one}:total", "t1") or 0)

    # totals are flushed once a second: an earlier test's connection to t1 may be counted yet
    before, settled = total(), time.monotonic()
    deadline = settled + 8
    while time.monotonic() - settled < 1.5:
        assert time.monotonic() < deadline, "t1's total never settled"
        time.sleep(0.1)
        if total() != before:
            before, settled = total(), time.monotonic()
    started = time.monotonic()
    with connect(scene.ports["sni_in"]) as sock:
        sock.sendall(b"plain bytes\n")
        sock.recv(100)  # t1 expected a TLS handshake: it answers an alert or closes
    assert time.monotonic() - started < 1.0  # decided without waiting out inspect-delay
    wait_until(lambda: total() == before + 1, 8, "one more connection counted on t1")


# -- the PROXY protocol ---------------------------------------------------------------------


def test_send_proxy_v1_forwards_the_address_an_accept_proxy_bind_received(scene: Scene) -> None:
    port = scene.ports["pp_in"]
    with connect(port) as sock:
        sock.sendall(f"PROXY TCP4 203.0.113.9 {HOST} 5555 {port}\r\nafter".encode())
        assert read_line(sock) == f"pp v1 203.0.113.9 5555 {HOST} {port}\n"
        assert sock.recv(5) == b"after"


def test_send_proxy_v2_tells_the_server_the_clients_own_address(scene: Scene) -> None:
    port = scene.ports["pp2_in"]
    with connect(port) as sock:
        own = sock.getsockname()[1]
        assert read_line(sock) == f"pp v2 {HOST} {own} {HOST} {port}\n"


def test_an_http_bind_with_accept_proxy_takes_the_client_from_the_header(scene: Scene) -> None:
    port = scene.ports["web"]
    header = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([198, 51, 100, 4, 127, 0, 0, 1]) \
        + (4321).to_bytes(2, "big") + port.to_bytes(2, "big")
    with connect(port) as sock:
        sock.sendall(header + b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'["x-forwarded-for", "198.51.100.4"]' in answer.lower()


def http_through_proxy_header(port: int, source: str, path: str) -> bytes:
    header = f"PROXY TCP4 {source} {HOST} 4321 {port}\r\n".encode()
    with connect(port) as sock:
        sock.sendall(header + f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_tcp_request_rules_in_an_http_frontend(scene: Scene) -> None:
    port = scene.ports["web"]
    assert http_through_proxy_header(port, "198.51.100.4", "/").startswith(b"HTTP/1.1 200")
    # connection rule: the client the PROXY header names is refused before any request
    assert http_through_proxy_header(port, "192.0.2.9", "/") == b""
    # content rule, per request: closed without an answer, as HAProxy does
    assert http_through_proxy_header(port, "198.51.100.4", "/private/x") == b""


def test_a_connection_without_the_header_on_an_accept_proxy_bind_is_closed(scene: Scene) -> None:
    with connect(scene.ports["pp_in"]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert sock.recv(100) == b""


# -- capacity -------------------------------------------------------------------------------


def test_maxconn_queues_connections_fleet_wide_until_timeout_queue(scene: Scene) -> None:
    port = scene.ports["queue_in"]
    first = connect(port)
    assert read_line(first) == "e3\n"
    waiting = connect(port)
    waiting.settimeout(0.4)
    with pytest.raises(TimeoutError):
        waiting.recv(10)  # queued: the only server holds its one connection
    assert scene.inflight("queue") == {"e3": 1}
    first.close()
    waiting.settimeout(3)
    assert read_line(waiting) == "e3\n"  # served as soon as the slot freed
    late = connect(port)
    late.settimeout(3)
    started = time.monotonic()
    assert late.recv(10) == b""  # timeout queue (1 s): closed without a server
    assert 0.8 < time.monotonic() - started < 2.5
    waiting.close()
    late.close()


# -- health ---------------------------------------------------------------------------------


def redis_port_behind(scene: Scene) -> int:
    with connect(scene.ports["redis_in"]) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        data = b""
        while b"tcp_port:" not in data or not data.endswith(b"\r\n"):
            data += sock.recv(65536)
    found = re.search(rb"tcp_port:(\d+)", data)
    assert found is not None
    return int(found.group(1))


def test_redis_check_takes_a_killed_redis_out_and_back_in(scene: Scene) -> None:
    r1, r2 = scene.ports["r1"], scene.ports["r2"]
    wait_until(lambda: scene.oper("redis", "r1") == "up", 5, "r1 checked UP")
    assert {redis_port_behind(scene) for _ in range(6)} == {r1, r2}
    process = scene.redis_servers["r1"]
    os.kill(process.pid, signal.SIGKILL)
    process.stop()
    wait_until(lambda: scene.oper("redis", "r1") == "down", 5, "r1 marked DOWN")
    time.sleep(SNAPSHOT_PERIOD)  # every worker has read the verdict
    assert {redis_port_behind(scene) for _ in range(6)} == {r2}
    scene.redis_servers["r1"] = start_redis(scene.registry, scene.stack.directory / "r1", "r1",
                                            r1)
    wait_until(lambda: scene.oper("redis", "r1") == "up", 5, "r1 back UP")
    time.sleep(SNAPSHOT_PERIOD)
    assert {redis_port_behind(scene) for _ in range(6)} == {r1, r2}


def test_on_marked_down_shutdown_sessions_cuts_the_open_connections(scene: Scene) -> None:
    sock = connect(scene.ports["cut_in"])
    assert read_line(sock) == "e4\n"
    scene.servers["h4"].stop()  # its checks fail: e4 goes DOWN while it still serves
    wait_until(lambda: scene.oper("cut", "e4") == "down", 5, "e4 marked DOWN")
    sock.settimeout(3)
    assert sock.recv(10) == b""
    sock.close()


# -- visibility -----------------------------------------------------------------------------


def test_a_tcplog_line_per_connection(scene: Scene) -> None:
    with connect(scene.ports["echo_in"]) as sock:
        greeting = read_line(sock)
        sock.sendall(b"ping\n")
        assert read_line(sock) == "ping\n"
        own = sock.getsockname()[1]
    pattern = re.compile(
        rf"^127\.0\.0\.1:{own} \[\d\d/\w\w\w/\d{{4}}:\d\d:\d\d:\d\d\.\d{{3}}\] echo_in "
        rf"echo/{greeting.strip()} \d+/\d+/\d+ 8 -- \d+/\d+/\d+/\d+/0 0/0$", re.M)
    wait_until(lambda: pattern.search(scene.proxy.output()) is not None, 3,
               f"a tcplog line for port {own}")


def test_the_stats_csv_and_metrics_show_tcp_proxies(scene: Scene) -> None:
    with connect(scene.ports["echo_in"]) as sock:
        read_line(sock)
    stats = StatsClient(scene.ports["stats"], "/")
    rows = stats.wait_csv(lambda rows: int(rows[("echo", "BACKEND")]["stot"] or 0) > 0)
    assert rows[("echo_in", "FRONTEND")]["mode"] == "tcp"
    assert rows[("echo", "BACKEND")]["mode"] == "tcp"
    assert rows[("echo", "e1")]["mode"] == "tcp"
    assert rows[("app", "BACKEND")]["mode"] == "http"
    assert int(rows[("echo_in", "FRONTEND")]["stot"]) > 0
    samples = stats.metrics("/metrics")
    names = {name for name, labels in samples if ("proxy", "echo") in labels}
    assert "haproxy_backend_current_sessions" in names


def test_a_killed_workers_connections_are_given_back(scene: Scene) -> None:
    socks = [connect(scene.ports["echo_in"]) for _ in range(8)]
    for sock in socks:
        read_line(sock)
    wait_until(lambda: sum(scene.inflight("echo").values()) == 8, 3, "8 in flight")
    victim = scene.proxy.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)

    def alive() -> int:
        count = 0
        for sock in socks:
            try:
                sock.sendall(b"x\n")
                sock.settimeout(1)
                count += read_line(sock) == "x\n"
            except OSError:
                pass
        return count

    try:
        wait_until(lambda: sum(scene.inflight("echo").values()) == alive(), 6,
                   "the dead worker's connections given back")
        scene.proxy.wait_for_workers(2)
    finally:
        for sock in socks:
            sock.close()
