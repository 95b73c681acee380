"""WebSocket (and any ``Connection: upgrade``) through geoproxy: a tunnel both ways.

HAProxy configuration manual: section 4 ``timeout tunnel`` (inactivity both ways ends the
tunnel), ``cookie`` (persistence applies to the handshake: the cookie routes it, ``insert``
sets the cookie on the 101), ``balance leastconn``/``maxconn`` (a tunnel counts in flight on
its server while it is open); RFC 9110 7.8 (Upgrade: a response other than 101 is a plain
response, and the connection goes on as HTTP/1.1). The servers are the demo backends, whose
``/ws`` echoes ``NAME: message`` (geoproxy.demo.websocket); the client is a raw-socket one
(tests/support/websocket_client.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import pytest
import redis

from tests.e2e.conftest import Stack
from tests.support.backends import Backend
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess
from tests.support.raw_client import RawConnection
from tests.support.websocket_client import BINARY, CLOSE, TEXT, WebSocketClient, masked_frame

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
TUNNEL_TIMEOUT = 0.5

CONFIG = """\
defaults
    mode http
    timeout connect 2s
    timeout client 20s
    timeout server 20s

frontend main
    bind {host}:{port}
    option httplog
    use_backend quick if {{ hdr(x-backend) -i quick }}
    use_backend counted if {{ hdr(x-backend) -i counted }}
    use_backend cutting if {{ hdr(x-backend) -i cutting }}
    default_backend app

backend app
    balance roundrobin
    cookie SRV insert indirect nocache
{app_servers}

backend quick
    timeout tunnel {tunnel_ms}ms
{servers}

backend counted
    balance leastconn
{servers}

backend cutting
    option httpchk GET /health
    server s4 {s4} check inter 200ms rise 1 fall 1 on-marked-down shutdown-sessions
"""


@dataclass
class Scene:
    port: int
    backends: list[Backend]
    redis: redis.Redis
    proxy: ProxyProcess

    def client(self) -> WebSocketClient:
        return WebSocketClient(HOST, self.port)

    def inflight(self, backend: str) -> dict[str, int]:
        counts = cast(dict[str, str], self.redis.hgetall(f"gp:{{{backend}}}:inflight"))
        return {name: int(value) for name, value in counts.items() if int(value)}


@pytest.fixture(scope="module")
def scene(module_stack: Stack) -> Iterator[Scene]:
    backends = module_stack.backends(3)
    checked = module_stack.backends(1, names=["s4"])[0]
    servers = "\n".join(f"    server {b.name} {b.address}" for b in backends)
    app_servers = "\n".join(f"    server {b.name} {b.address} cookie {b.name}" for b in backends)
    port = free_port()
    proxy = module_stack.proxy(
        CONFIG.format(
            host=HOST,
            port=port,
            servers=servers,
            app_servers=app_servers,
            tunnel_ms=int(TUNNEL_TIMEOUT * 1000),
            s4=checked.address,
        )
    )
    client = redis.Redis.from_url(module_stack.redis_url, decode_responses=True)
    try:
        yield Scene(port, [*backends, checked], client, proxy)
    finally:
        client.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def test_a_websocket_echo_works_through_geoproxy(scene: Scene) -> None:
    with scene.client() as ws:
        assert ws.handshake() == 101
        server = ws.header("X-Server")
        assert server in ("s1", "s2", "s3")
        assert ws.echo("hello") == f"{server}: hello"
        assert ws.echo("again") == f"{server}: again"
        big = bytes(range(256)) * 300  # 76800 bytes: a 64-bit length, several TCP reads
        ws.send_frame(BINARY, big)
        assert ws.recv_frame() == (BINARY, big)
        ws.send_close(1000)
        opcode, payload = ws.recv_frame()
        assert (opcode, payload[:2]) == (CLOSE, b"\x03\xe8")
        assert ws.sees_eof()


def test_what_the_server_sends_right_after_its_101_reaches_the_client(scene: Scene) -> None:
    with scene.client() as ws:
        assert ws.handshake("/ws?greet=1") == 101
        server = ws.header("X-Server")
        assert ws.recv_text() == f"{server}: hello"
        assert ws.echo("and then") == f"{server}: and then"


def test_frames_the_client_sent_right_behind_its_handshake_reach_the_server(
    scene: Scene,
) -> None:
    early = masked_frame(TEXT, b"early one") + masked_frame(TEXT, b"early two")
    with scene.client() as ws:
        assert ws.handshake(early=early) == 101
        server = ws.header("X-Server")
        assert [ws.recv_text(), ws.recv_text()] == [f"{server}: early one", f"{server}: early two"]


def test_the_handshake_gets_the_inserted_cookie_and_the_cookie_keeps_its_server(
    scene: Scene,
) -> None:
    with scene.client() as ws:
        assert ws.handshake() == 101
        first = ws.header("X-Server")
        assert ws.header("Set-Cookie") == f"SRV={first}; path=/"
        assert ws.echo("one") == f"{first}: one"
    for attempt in range(6):
        with scene.client() as ws:
            assert ws.handshake(headers={"Cookie": f"SRV={first}"}) == 101
            assert ws.header("Set-Cookie") is None
            assert ws.echo(f"sticky {attempt}") == f"{first}: sticky {attempt}"
    reached = set()
    for _ in range(6):  # without the cookie, round robin spreads the handshakes
        with scene.client() as ws:
            assert ws.handshake() == 101
            reached.add(ws.echo("x").partition(":")[0])
    assert len(reached) > 1


def test_the_server_counts_the_tunnel_in_flight_while_it_is_open(scene: Scene) -> None:
    assert scene.inflight("counted") == {}
    with scene.client() as ws:
        assert ws.handshake(headers={"X-Backend": "counted"}) == 101
        server = ws.header("X-Server")
        assert server is not None
        assert ws.echo("hold") == f"{server}: hold"
        wait_until(lambda: scene.inflight("counted") == {server: 1}, 3, "one in flight")
        time.sleep(0.3)  # held, not merely counted late
        assert scene.inflight("counted") == {server: 1}
        with scene.client() as second:  # leastconn: the busy server is avoided
            assert second.handshake(headers={"X-Backend": "counted"}) == 101
            assert second.header("X-Server") != server
        ws.send_close(1000)
        assert ws.recv_frame()[0] == CLOSE
        assert ws.sees_eof()
    wait_until(lambda: scene.inflight("counted") == {}, 3, "the tunnel's lease released")


def test_timeout_tunnel_closes_a_tunnel_idle_both_ways(scene: Scene) -> None:
    with scene.client() as ws:
        assert ws.handshake(headers={"X-Backend": "quick"}) == 101
        server = ws.header("X-Server")
        for count in range(4):  # traffic keeps it open past the timeout
            time.sleep(TUNNEL_TIMEOUT / 2)
            assert ws.echo(f"tick {count}") == f"{server}: tick {count}"
        idle_from = time.monotonic()
        assert ws.sees_eof(wait=TUNNEL_TIMEOUT + 3)
        assert time.monotonic() - idle_from >= TUNNEL_TIMEOUT - 0.05
    wait_until(lambda: scene.inflight("quick") == {}, 3, "the tunnel's lease released")


def test_an_upgrade_answered_without_101_is_a_plain_response_and_the_connection_goes_on(
    scene: Scene,
) -> None:
    with RawConnection(HOST, scene.port) as connection:
        connection.send(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
            b"GET /headers HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: foo/2\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        refused = connection.read_response()
        assert refused.status == 426
        assert refused.header("Upgrade") is None  # hop-by-hop on anything but a 101
        headers = json.loads(connection.read_response().body)
        sent = {name.lower(): value for name, value in headers}
        assert (sent["connection"], sent["upgrade"]) == ("upgrade", "foo/2")
        assert connection.read_response().body.startswith(b"served by s")


def test_a_client_that_half_closes_ends_the_tunnel_and_the_server_sees_the_end(
    scene: Scene,
) -> None:
    with scene.client() as ws:
        assert ws.handshake(headers={"X-Backend": "counted"}) == 101
        server = ws.header("X-Server")
        assert ws.echo("before") == f"{server}: before"
        ws.shutdown_write()
        # the demo server ends its session when its client's stream ends, then closes
        assert ws.sees_eof()
    wait_until(lambda: scene.inflight("counted") == {}, 3, "the tunnel's lease released")


def test_a_server_that_closes_ends_the_tunnel_and_the_client_sees_the_end(scene: Scene) -> None:
    with scene.client() as ws:
        assert ws.handshake(headers={"X-Backend": "counted"}) == 101
        ws.send_text("!close")
        opcode, payload = ws.recv_frame()
        assert (opcode, payload) == (CLOSE, b"\x03\xe8closing as asked")
        assert ws.sees_eof()
    wait_until(lambda: scene.inflight("counted") == {}, 3, "the tunnel's lease released")


def test_a_server_marked_down_with_shutdown_sessions_has_its_tunnels_cut(scene: Scene) -> None:
    s4 = scene.backends[-1]
    with scene.client() as ws:
        assert ws.handshake(headers={"X-Backend": "cutting"}) == 101
        assert ws.echo("before") == "s4: before"
        s4.fail_health()
        try:
            assert ws.sees_eof(wait=3.0)
            # ended both ways while the client still holds its end open
            wait_until(lambda: scene.inflight("cutting") == {}, 3, "the tunnel's lease released")
        finally:
            s4.pass_health()
    cut = re.compile(r"main cutting/s4 \S+ 101 \d+ - - DD")
    wait_until(lambda: cut.search(scene.proxy.output()) is not None, 3, "logged as cut")


def test_a_tunnel_is_logged_when_it_ends_with_its_101_and_the_bytes_it_carried(
    scene: Scene,
) -> None:
    with scene.client() as ws:
        assert ws.handshake("/ws?marker=logged", {"X-Backend": "counted"}) == 101
        server = ws.header("X-Server")
        reply = ws.echo("x" * 5000)
        ws.send_close(1000)
        assert ws.recv_frame()[0] == CLOSE
        assert ws.sees_eof()
    line = re.compile(
        rf"main counted/{server} \S+ 101 (\d+) - - (\S\S)\S\S .*\"GET /ws\?marker=logged "
    )

    def logged() -> re.Match[str] | None:
        return line.search(scene.proxy.output())

    wait_until(lambda: logged() is not None, 3, "the tunnel's log line")
    found = logged()
    assert found is not None
    assert int(found[1]) > len(reply)  # the 101 head and every frame sent back
    assert found[2] == "--"
