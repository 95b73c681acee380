"""What reaches the server, and how: the request path through ``geoproxy run``.

HAProxy configuration manual: "option http-keep-alive" (the default: server connections are
kept and reused), "option forwardfor" (X-Forwarded-For carries the client's address), section
1.2 and RFC 9110 7.6.1 (hop-by-hop headers and the headers the client's Connection names stop
at the proxy; "Connection: close" closes the client connection after the response), section
1.2.1 (an absolute-form URI is forwarded to the configured server, never dialled), "retries"
with "option redispatch" (a refused connection moves to a live server), and RFC 9112 6.3
(HEAD, 204 and 304 responses carry no body).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Stack
from tests.integration.forward_scripted import ScriptedServer
from tests.support.backends import Backend
from tests.support.http_client import get
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess
from tests.support.raw_client import RawConnection

TURNAROUND = 1.0  # min(1 s, timeout connect) for the redispatch backends below

CONFIG = """\
defaults
    mode http
    timeout connect 100ms
    timeout client 5s
    timeout server 5s
    timeout http-request 2s

frontend main
    bind 127.0.0.1:{main_port}
    use_backend forwarded if {{ hdr(host) -i forwarded.test }}
    use_backend redispatch_rr if {{ path_beg /rr/ }}
    use_backend redispatch_first if {{ path_beg /first/ }}
    default_backend app

backend app
    server s1 {s1}

backend forwarded
    option forwardfor
    server s1 {s1}

backend redispatch_rr
    timeout connect 1s
    retries 3
    option redispatch
    server dead 127.0.0.1:{dead_port}
    server s2 {s2}

backend redispatch_first
    balance first
    timeout connect 1s
    retries 2
    option redispatch
    server dead 127.0.0.1:{dead_port}
    server s2 {s2}
"""


@dataclass
class Scene:
    proxy: ProxyProcess
    port: int
    s1: Backend
    s2: Backend


@pytest.fixture(scope="module")
def scene(module_stack: Stack) -> Iterator[Scene]:
    s1, s2 = module_stack.backends(2)
    port = free_port()
    config = CONFIG.format(main_port=port, s1=s1.address, s2=s2.address, dead_port=free_port())
    proxy = module_stack.proxy(config, workers=2)
    workers = proxy.worker_pids()
    yield Scene(proxy, port, s1, s2)
    assert proxy.worker_pids() == workers


def received_headers(port: int, raw_head: bytes) -> list[tuple[str, str]]:
    """The header fields the server received for the request ``raw_head`` (to /headers)."""
    with RawConnection("127.0.0.1", port) as connection:
        connection.send(raw_head)
        answer = connection.read_response()
    assert answer.status == 200, answer
    return [(name, value) for name, value in json.loads(answer.body)]


def test_server_connections_are_kept_alive_and_reused_across_requests(scene: Scene) -> None:
    scene.s1.reset_stats()
    for _ in range(40):
        assert get(scene.port, "/").status == 200
    stats = scene.s1.stats()
    assert stats["requests"] == 40
    # one or two idle connections per worker serve every request
    assert stats["connections"] <= 4


def test_option_forwardfor_adds_the_client_address_after_the_clients_own_value(
    scene: Scene,
) -> None:
    headers = received_headers(
        scene.port,
        b"GET /headers HTTP/1.1\r\nHost: forwarded.test\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
    )
    assert [v for n, v in headers if n.lower() == "x-forwarded-for"] == [
        "203.0.113.9",
        "127.0.0.1",
    ]


def test_without_option_forwardfor_no_x_forwarded_for_is_added(scene: Scene) -> None:
    headers = received_headers(scene.port, b"GET /headers HTTP/1.1\r\nHost: test\r\n\r\n")
    assert not [n for n, _ in headers if n.lower() == "x-forwarded-for"]


def test_hop_by_hop_headers_and_those_the_connection_header_names_never_reach_the_server(
    scene: Scene,
) -> None:
    headers = received_headers(
        scene.port,
        b"GET /headers HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, X-Secret\r\n"
        b"X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n"
        b"Proxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n",
    )
    names = {name.lower() for name, _ in headers}
    hop_by_hop = {"connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-connection"}
    assert not names & hop_by_hop
    assert ("x-kept", "yes") in headers


def test_a_client_connection_close_among_other_tokens_closes_the_connection(
    scene: Scene,
) -> None:
    with RawConnection("127.0.0.1", scene.port) as connection:
        connection.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close, X-Trace\r\n\r\n")
        answer = connection.read_response()
        assert answer.status == 200
        assert connection.is_closed_by_peer(wait=1.0)


def test_an_http10_client_asking_keep_alive_among_other_tokens_is_kept_alive(
    scene: Scene,
) -> None:
    with RawConnection("127.0.0.1", scene.port) as connection:
        for _ in range(2):
            connection.send(b"GET / HTTP/1.0\r\nConnection: Keep-Alive, X-Trace\r\n\r\n")
            answer = connection.read_response()
            assert answer.status == 200
            assert answer.body.startswith(b"served by")


def test_an_absolute_form_uri_for_another_host_goes_to_the_configured_server(
    scene: Scene,
) -> None:
    with ScriptedServer(lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")) as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.port}/headers"
        headers = received_headers(
            scene.port,
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{elsewhere.port}\r\n\r\n".encode(),
        )
        time.sleep(0.1)
        assert elsewhere.accepted == 0
    assert ("host", f"127.0.0.1:{elsewhere.port}") in headers


def test_head_204_and_304_answers_carry_no_body_on_a_kept_alive_connection(
    scene: Scene,
) -> None:
    with RawConnection("127.0.0.1", scene.port) as connection:
        connection.send(
            b"HEAD /bytes/5000 HTTP/1.1\r\nHost: test\r\n\r\n"
            b"GET /status/204 HTTP/1.1\r\nHost: test\r\n\r\n"
            b"GET /status/304 HTTP/1.1\r\nHost: test\r\n\r\n"
            b"GET /bytes/10 HTTP/1.1\r\nHost: test\r\n\r\n"
        )
        head = connection.read_response("HEAD")
        assert (head.status, head.header("Content-Length"), head.body) == (200, "5000", b"")
        assert connection.read_response().status == 204
        assert connection.read_response().status == 304
        last = connection.read_response()
        assert (last.status, len(last.body)) == (200, 10)
        connection.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            connection.sock.recv(1)  # nothing after the last answer: no stray body bytes


@pytest.mark.parametrize("prefix", ["/rr/", "/first/"])
def test_retries_with_option_redispatch_move_a_refused_request_to_a_live_server_at_once(
    scene: Scene, prefix: str
) -> None:
    scene.s2.reset_stats()
    for i in range(4):
        started = time.monotonic()
        answer = get(scene.port, f"{prefix}{i}")
        assert (answer.status, answer.header("X-Server")) == (200, "s2")
        # HAProxy redispatches a non-hash backend's request on the first failure, without
        # waiting the turnaround
        assert time.monotonic() - started < TURNAROUND * 0.9
    assert scene.s2.stats()["requests"] == 4


def test_nothing_is_dialled_for_a_request_geoproxy_refuses(scene: Scene) -> None:
    scene.s1.reset_stats()
    with socket.create_connection(("127.0.0.1", scene.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
    assert scene.s1.stats()["requests"] == 0
