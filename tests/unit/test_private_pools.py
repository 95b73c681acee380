"""``send-proxy`` servers of an HTTP backend: the pool a request gets is private to its client
connection and sends that client's PROXY header (``geoproxy.proxy.pools`` rule 5,
``geoproxy.forward.private``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from geoproxy.balance.view import BackendView
from geoproxy.config import parse_text
from geoproxy.config.model_tcp import ProxyProtocol
from geoproxy.forward.private import PRIVATE, PrivatePools
from geoproxy.proxy.pools import ServerPools, proxy_header
from geoproxy.proxy.unique_id import LOCAL_ADDRESS


def pools_for(server_line: str) -> ServerPools:
    config = parse_text("frontend f\n    mode http\n    bind :9000\n    default_backend b\n"
                        f"backend b\n    mode http\n    {server_line}\n", "t.cfg", env={})
    return ServerPools(config.backends[0])


def environ(port: int, private: PrivatePools | None) -> dict[str, object]:
    env: dict[str, object] = {"REMOTE_ADDR": "192.0.2.7", "REMOTE_PORT": str(port),
                              LOCAL_ADDRESS: "10.0.0.1", "SERVER_NAME": "0.0.0.0",
                              "SERVER_PORT": "8080"}
    if private is not None:
        env[PRIVATE] = private
    return env


VIEW = BackendView("b", ())


def test_a_plain_server_has_one_shared_pool() -> None:
    pools = pools_for("server s 127.0.0.1:1")
    one, two = PrivatePools(), PrivatePools()
    assert pools.pool("s", environ(1, one), VIEW) is pools.pool("s", environ(2, two), VIEW)
    assert pools["s"].header == b""


def test_each_client_connection_gets_its_own_pool_with_its_header() -> None:
    pools = pools_for("server s 127.0.0.1:1 send-proxy")
    one, two = PrivatePools(), PrivatePools()
    first = pools.pool("s", environ(1111, one), VIEW)
    assert first.header == b"PROXY TCP4 192.0.2.7 10.0.0.1 1111 8080\r\n"
    assert pools.pool("s", environ(1111, one), VIEW) is first  # later requests reuse it
    other = pools.pool("s", environ(2222, two), VIEW)
    assert other is not first and other is not pools["s"]
    assert other.header == b"PROXY TCP4 192.0.2.7 10.0.0.1 2222 8080\r\n"


def test_send_proxy_v2_header_and_a_request_without_private_pools() -> None:
    pools = pools_for("server s 127.0.0.1:1 send-proxy-v2")
    pool = pools.pool("s", environ(1111, None), VIEW)
    assert pool.max_idle == 0  # keeps nothing: no client connection owns it
    assert pool.header.startswith(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")


def test_a_unix_socket_client_gets_an_unknown_header() -> None:
    env = {"REMOTE_ADDR": "", "REMOTE_PORT": "", "SERVER_NAME": "/run/x.sock", "SERVER_PORT": ""}
    assert proxy_header(ProxyProtocol.V1, env) == b"PROXY UNKNOWN\r\n"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    try:
        yield server
    finally:
        server.close()


def test_the_header_is_sent_first_and_closing_the_client_connection_closes_its_own(
        listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    pools = pools_for(f"server s 127.0.0.1:{port} send-proxy")
    private = PrivatePools()
    pool = pools.pool("s", environ(1111, private), VIEW)
    received: list[bytes] = []

    def accept() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            received.append(conn.recv(4096))
            received.append(conn.recv(4096))  # b"": closed with the client connection

    thread = threading.Thread(target=accept)
    thread.start()
    conn = pool.acquire(5)
    pool.release(conn)
    assert pool.idle_count == 1
    private.close()
    thread.join(5)
    assert received == [b"PROXY TCP4 192.0.2.7 10.0.0.1 1111 8080\r\n", b""]
    assert pool.idle_count == 0
    late = PrivatePools()
    late.close()
    assert pools.pool("s", environ(1, late), VIEW).max_idle == 0
