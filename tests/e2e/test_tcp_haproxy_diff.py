"""Differential: the same ``mode tcp`` frontend run by haproxy 2.6 and by geoproxy must route
the same bytes to the same servers and log them in the same tcplog line; and each side reads
the PROXY protocol headers the other writes.

HAProxy configuration manual: ``tcp-request inspect-delay``, ``tcp-request content accept``,
``use_backend`` on ``req.ssl_sni``, ``HTTP``, ``req.len``, ``dst_port``; ``option tcplog``
(section 8.2.2); ``send-proxy-v2`` and ``accept-proxy``.
"""

from __future__ import annotations

import functools
import re
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Stack
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.proxy_process import ProxyProcess
from tests.support.tcp_servers import TcpServer, start_tcp_servers
from tests.support.tools import tool_missing

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
DELAY_MS = 400
ROUTE = """\
frontend route
    bind {host}:{route}
    bind {host}:{route2}
    option tcplog
    log stdout format raw local0
    tcp-request inspect-delay {delay}ms
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    tcp-request content accept if HTTP
    tcp-request content accept if {{ req.len gt 10 }}
    tcp-request content accept if WAIT_END
    use_backend b_sni if {{ req.ssl_sni -i one.test }}
    use_backend b_port if {{ req.ssl_alpn acme-tls/1 }}
    use_backend b_http if HTTP
    use_backend b_len if {{ req.len gt 10 }}
    use_backend b_port if {{ dst_port {route2} }}
    default_backend b_def

backend b_sni
    server sni {sni}
backend b_http
    server http {http}
backend b_len
    server len {len}
backend b_port
    server port {port}
backend b_def
    server def {def}
"""
DEFAULTS = """\
defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
"""
# haproxy sends PROXY v2 to geoproxy (accept-proxy), which sends v1 to the pp server
HAPROXY_INTEROP = """\
frontend hx_in
    bind {host}:{hx_in}
    default_backend to_geoproxy
backend to_geoproxy
    server g {host}:{gp_in} send-proxy-v2

frontend hp_in
    bind {host}:{hp_in} accept-proxy
    option tcplog
    log stdout format raw local0
    default_backend b_def
"""
# geoproxy sends PROXY v2 to haproxy (accept-proxy), which logs the client it was told of
GEOPROXY_INTEROP = """\
frontend gp_in
    bind {host}:{gp_in} accept-proxy
    default_backend pp_v1
backend pp_v1
    server pp {pp} send-proxy

frontend gx_in
    bind {host}:{gx_in}
    default_backend to_haproxy
backend to_haproxy
    server h {host}:{hp_in} send-proxy-v2
"""
NAMES = ("route", "route2", "hx_in", "hp_in", "gp_in", "gx_in")


@dataclass
class Pair:
    haproxy: ManagedProcess
    geoproxy: ProxyProcess
    ports: dict[str, int]  # geoproxy's
    haproxy_ports: dict[str, int]


@functools.cache
def client_hello(name: str) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@functools.cache
def alpn_hello(protocols: tuple[str, ...]) -> bytes:
    """A ClientHello for other.test offering ``protocols`` (ALPN), in that order."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(list(protocols))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="other.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.fixture(scope="module")
def pair(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Pair]:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        tool_missing("haproxy is not installed")
    logs = module_stack.directory / "servers"
    specs = [("echo", name) for name in ("sni", "http", "len", "port", "def")]
    started = start_tcp_servers(process_registry, logs, [*specs, ("proxy", "pp")],
                                outlive_test=True)
    servers: dict[str, TcpServer] = {server.name: server for server in started}
    addresses = {name: server.address for name, server in servers.items()}
    mine = dict(zip(NAMES, free_ports(len(NAMES)), strict=True))
    theirs = dict(zip(NAMES, free_ports(len(NAMES)), strict=True))
    shared = {"host": HOST, "delay": DELAY_MS, **addresses}
    # each proxy's own route frontend; the interop sections point at the other's ports
    haproxy_text = DEFAULTS + ROUTE.format(**shared, route=theirs["route"],
                                           route2=theirs["route2"]) + HAPROXY_INTEROP.format(
        **shared, hx_in=theirs["hx_in"], gp_in=mine["gp_in"], hp_in=theirs["hp_in"])
    geoproxy_text = DEFAULTS + ROUTE.format(**shared, route=mine["route"],
                                            route2=mine["route2"]) + GEOPROXY_INTEROP.format(
        **shared, gp_in=mine["gp_in"], gx_in=mine["gx_in"], hp_in=theirs["hp_in"])
    config = module_stack.directory / "haproxy.cfg"
    config.write_text("global\n    maxconn 100\n" + haproxy_text)
    running = process_registry.start("haproxy", [haproxy, "-db", "-f", str(config)],
                                     module_stack.directory, session=True)
    try:
        for name in ("route", "hx_in", "hp_in"):
            wait_for_port(HOST, theirs[name], 10.0, running.is_running)
        geoproxy = module_stack.proxy(geoproxy_text)
        yield Pair(running, geoproxy, mine, theirs)
    finally:
        running.stop()
        for server in servers.values():
            server.stop()


def exchange(port: int, data: bytes) -> tuple[str, int]:
    """Send ``data``, read the server's name and the echo, close; returns (name, own port)."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.settimeout(5)
        own = sock.getsockname()[1]
        sock.sendall(data)
        received = b""
        while b"\n" not in received or len(received) < received.index(b"\n") + 1 + len(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received.split(b"\n", 1)[0].decode(), own


CASES = {
    "hello for one.test": (client_hello, "one.test", "route"),
    "hello for another name": (client_hello, "other.test", "route"),
    "hello offering h2 then acme-tls/1": (alpn_hello, ("h2", "acme-tls/1"), "route"),
    "hello offering h2 and http/1.1": (alpn_hello, ("h2", "http/1.1"), "route"),
    "an HTTP request": (None, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", "route"),
    "twenty bytes of something": (None, b"0123456789abcdefghij", "route"),
    "three bytes, then the delay": (None, b"abc", "route"),
    "three bytes on the second port": (None, b"abc", "route2"),
}


def payload(case: str) -> tuple[bytes, str]:
    make, value, bind = CASES[case]
    data = make(value) if make is not None else value
    assert isinstance(data, bytes)
    return data, bind


@pytest.mark.parametrize("case", list(CASES))
def test_both_route_the_same_bytes_to_the_same_server(pair: Pair, case: str) -> None:
    data, bind = payload(case)
    theirs, _ = exchange(pair.haproxy_ports[bind], data)
    mine, _ = exchange(pair.ports[bind], data)
    assert mine == theirs


def test_req_ssl_alpn_matches_a_protocol_offered_after_another(pair: Pair) -> None:
    """Each ALPN protocol is one value of ``req.ssl_alpn``: acme-tls/1 offered second still
    matches, in haproxy as in geoproxy."""
    data, bind = payload("hello offering h2 then acme-tls/1")
    assert exchange(pair.haproxy_ports[bind], data)[0] == "port"
    assert exchange(pair.ports[bind], data)[0] == "port"
    data, bind = payload("hello offering h2 and http/1.1")
    assert exchange(pair.ports[bind], data)[0] == "len"  # no acme-tls/1: the next rule


def _tcplog(output: str, port: int) -> str:
    """The tcplog line of the connection from ``port``, with what varies run to run (the
    client's port, the date, the timers) masked."""
    for line in output.splitlines():
        if line.startswith(f"{HOST}:{port} "):
            masked = re.sub(r"^(\S+):\d+ \[[^\]]+\]", r"\1:PORT [DATE]", line)
            return re.sub(r" -?\d+/-?\d+/-?\d+ ", " Tw/Tc/Tt ", masked, count=1)
    return ""


def wait_for_tcplog(process_output: Callable[[], str], port: int) -> str:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        line = _tcplog(process_output(), port)
        if line:
            return line
        time.sleep(0.02)
    return ""


@pytest.mark.parametrize("case", ["an HTTP request", "twenty bytes of something",
                                  "hello for one.test"])
def test_both_write_the_same_tcplog_line(pair: Pair, case: str) -> None:
    data, bind = payload(case)
    _, their_port = exchange(pair.haproxy_ports[bind], data)
    _, my_port = exchange(pair.ports[bind], data)
    theirs = wait_for_tcplog(pair.haproxy.output, their_port)
    mine = wait_for_tcplog(pair.geoproxy.output, my_port)
    assert theirs, pair.haproxy.output()[-2000:]
    assert mine == theirs


def test_geoproxy_reads_haproxys_v2_header_and_writes_v1(pair: Pair) -> None:
    with socket.create_connection((HOST, pair.haproxy_ports["hx_in"]), timeout=5) as sock:
        sock.settimeout(5)
        own = sock.getsockname()[1]
        line = sock.makefile("rb").readline().decode()
    assert line == f"pp v1 {HOST} {own} {HOST} {pair.haproxy_ports['hx_in']}\n"


def test_haproxy_reads_geoproxys_v2_header(pair: Pair) -> None:
    name, own = exchange(pair.ports["gx_in"], b"hi")
    assert name == "def"
    logged = wait_for_tcplog(pair.haproxy.output, own)
    assert logged.startswith(f"{HOST}:PORT [DATE] hp_in b_def/def "), logged

