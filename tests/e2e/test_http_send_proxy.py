"""``server ... send-proxy`` and ``send-proxy-v2`` on the servers of an HTTP backend: every new
connection to the server starts with the PROXY header of the client connection it was opened
for, and carries that client connection's requests only (HAProxy 2.6 makes it private); the
later requests of the same keep-alive client connection reuse it. A TLS server receives the
header before the handshake. The same configuration run by haproxy 2.6 is the oracle of what
the server receives.

The servers are ``httpproxy`` processes of ``tests/support/tcp_servers.py``: each answer says
which of the server's connections carried the request, its number on it, and the header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.support.certs import authority
from tests.support.h2_client import RawH2Client
from tests.support.haproxy_process import start_haproxy
from tests.support.ports import free_ports
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.raw_client import RawConnection
from tests.support.tcp_servers import TcpServer, start_tcp_servers

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
CONFIG = """\
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend v1_in
    bind {host}:{v1_in}
    default_backend b_v1

frontend v2_in
    bind {host}:{v2_in}
    default_backend b_v2

frontend tls_in
    bind {host}:{tls_in}
    default_backend b_tls

frontend h2_in
    bind {host}:{h2_in} proto h2
    default_backend b_v1

backend b_v1
    server s1 {s1} send-proxy

backend b_v2
    server s2 {s2} send-proxy-v2

backend b_tls
    server s3 {s3} send-proxy ssl verify none
"""
FRONTENDS = ("v1_in", "v2_in", "tls_in", "h2_in")
ANSWER = re.compile(r"(\w+) conn=(\d+) req=(\d+) (.*)")


@dataclass(frozen=True, slots=True)
class Scene:
    mine: dict[str, int]
    theirs: dict[str, int]
    haproxy: ManagedProcess


@dataclass(frozen=True, slots=True)
class Seen:
    """What the server said of one request."""

    server: str
    conn: int
    req: int
    header: str
    head: bytes


@pytest.fixture(scope="module")
def scene(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Scene]:
    directory: Path = module_stack.directory
    cert, key = authority().issue("s3.test", ("s3.test",)).write_pair(
        directory / "s3.crt", directory / "s3.key")
    specs = [("httpproxy", "s1"), ("httpproxy", "s2"),
             ("httpproxy", "s3", str(cert), str(key))]
    started = start_tcp_servers(process_registry, directory / "servers", specs,
                                outlive_test=True)
    servers: dict[str, TcpServer] = {server.name: server for server in started}
    addresses = {name: server.address for name, server in servers.items()}
    mine = dict(zip(FRONTENDS, free_ports(len(FRONTENDS)), strict=True))
    theirs = dict(zip(FRONTENDS, free_ports(len(FRONTENDS)), strict=True))
    haproxy = start_haproxy(process_registry, CONFIG.format(host=HOST, **theirs, **addresses),
                            directory / "haproxy", outlive_test=True)
    try:
        # one worker: two clients' requests meet in one process, where a shared pool would
        # hand one client's server connection to the other
        module_stack.proxy(CONFIG.format(host=HOST, **mine, **addresses), workers=1)
        yield Scene(mine, theirs, haproxy)
    finally:
        haproxy.stop()
        for server in servers.values():
            server.stop()


def ask(client: RawConnection, path: str) -> Seen:
    client.send(f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode())
    response = client.read_response()
    assert response.status == 200, response
    line, _, head = response.body.partition(b"\n")
    found = ANSWER.fullmatch(line.decode())
    assert found is not None, line
    return Seen(found[1], int(found[2]), int(found[3]), found[4], head)


def own_port(client: RawConnection) -> int:
    return int(client.sock.getsockname()[1])


@pytest.mark.parametrize(("frontend", "version"),
                         [("v1_in", "v1"), ("v2_in", "v2"), ("tls_in", "v1")])
def test_each_client_connection_has_its_own_server_connection_and_header(
        scene: Scene, frontend: str, version: str) -> None:
    port = scene.mine[frontend]
    with RawConnection(HOST, port) as a, RawConnection(HOST, port) as b:
        seen_a = [ask(a, "/a1"), ask(b, "/b1"), ask(a, "/a2"), ask(b, "/b2"), ask(a, "/a3")]
        a_header = f"{version} {HOST} {own_port(a)} {HOST} {port}"
        b_header = f"{version} {HOST} {own_port(b)} {HOST} {port}"
    first_a, first_b, second_a, second_b, third_a = seen_a
    # the header names each client; one server connection per client connection
    assert [s.header for s in seen_a] == [a_header, b_header, a_header, b_header, a_header]
    assert first_a.conn != first_b.conn
    # the same keep-alive client connection reuses its own server connection
    assert second_a.conn == third_a.conn == first_a.conn
    assert second_b.conn == first_b.conn
    assert [s.req for s in seen_a] == [1, 1, 2, 2, 3]


def test_a_new_client_connection_never_reuses_an_ended_ones_server_connection(
        scene: Scene) -> None:
    port = scene.mine["v1_in"]
    with RawConnection(HOST, port) as a:
        first = ask(a, "/one")
    with RawConnection(HOST, port) as b:
        later = ask(b, "/two")
        assert later.header == f"v1 {HOST} {own_port(b)} {HOST} {port}"
    assert later.conn != first.conn and later.req == 1


def test_http2_client_connections_each_have_their_own_server_connection(scene: Scene) -> None:
    port = scene.mine["h2_in"]
    clients = [RawH2Client(HOST, port), RawH2Client(HOST, port)]
    try:
        seen: list[list[Seen]] = [[], []]
        for _ in range(2):
            for index, client in enumerate(clients):
                answer = client.get("/h2")
                assert answer.status == 200, answer
                line = answer.body.partition(b"\n")[0].decode()
                found = ANSWER.fullmatch(line)
                assert found is not None, line
                seen[index].append(Seen(found[1], int(found[2]), int(found[3]), found[4], b""))
        for client, (first, second) in zip(clients, seen, strict=True):
            own = client.sock.getsockname()[1]
            assert first.header == second.header == f"v1 {HOST} {own} {HOST} {port}"
            assert (first.conn, first.req, second.conn, second.req) == (
                first.conn, 1, first.conn, 2)
        assert seen[0][0].conn != seen[1][0].conn
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("frontend", FRONTENDS[:3])
def test_the_server_receives_what_haproxy_sends_it(scene: Scene, frontend: str) -> None:
    def run(port: int) -> list[tuple[str, int, bytes]]:
        """(header with the ports as names, request number, request head) per request, and
        whether the connections were shared as HAProxy shares them."""
        out: list[tuple[str, int, bytes]] = []
        with RawConnection(HOST, port) as a, RawConnection(HOST, port) as b:
            names = {str(own_port(a)): "A", str(own_port(b)): "B", str(port): "FE"}
            seen = [ask(a, "/x?1"), ask(b, "/y"), ask(a, "/x?2")]
        for s in seen:
            header = " ".join(names.get(word, word) for word in s.header.split(" "))
            out.append((header, s.req, s.head))
        assert seen[0].conn == seen[2].conn != seen[1].conn
        return out

    assert run(scene.mine[frontend]) == run(scene.theirs[frontend])
