"""Disabled frontends on one host (``geoproxy.runtime.frontend_gate`` and
``frontend_listener``), on real sockets and a real Redis, without gunicorn: the master's part
takes a disabled frontend's listening socket out of LISTEN (new connections refused, as by a
paused HAProxy) and listens again when it is enabled; the worker's part accepts nothing while
paused and survives a socket taken out of LISTEN under it. ``tests/e2e/test_runtime_api.py``
shows the whole through ``geoproxy run``, against haproxy 2.6.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import gevent
import pytest
from gevent import socket as gsocket

from geoproxy.config import parse_text
from geoproxy.runtime.frontend_gate import FrontendGate, HostFirstOps, pause_listeners
from geoproxy.runtime.frontend_listener import RETRY, FrontendListener
from geoproxy.state.frontend_admin import FrontendAdmin
from geoproxy.state.redis_store import RedisFleetState
from tests.support.ports import free_ports

CONFIG = """
frontend fa
    bind 127.0.0.1:{a}
    default_backend b
frontend fb
    bind *:{b}
    default_backend b
backend b
    server s1 127.0.0.1:9
"""


def _listen(port: int, host: str = "127.0.0.1", *, green: bool = False) -> socket.socket:
    sock = (gsocket.socket if green else socket.socket)(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(16)
    return sock


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


def test_the_master_refuses_a_disabled_frontends_connections_then_listens_again(
    redis_url: str,
) -> None:
    port_a, port_b = free_ports(2)
    config = parse_text(CONFIG.format(a=port_a, b=port_b), "gate.cfg")
    listeners = [_listen(port_a), _listen(port_b, "0.0.0.0")]
    gate = FrontendGate(redis_url, lambda off: pause_listeners(listeners, config, off, 16))
    ops = HostFirstOps(redis_url, gate)
    try:
        gate.refresh()
        assert _connects(port_a) and _connects(port_b)
        assert ops.disable_frontend("fa") is True  # applied here before it returns
        assert (_connects(port_a), _connects(port_b)) == (False, True)
        assert ops.disable_frontend("fa") is False
        assert ops.enable_frontend("fa") is True
        assert (_connects(port_a), _connects(port_b)) == (True, True)  # same socket, same port
        assert ops.enable_frontend("fa") is False
        # a wildcard bind's socket is named 0.0.0.0: still its frontend's
        other_host = FrontendAdmin.connect(redis_url)
        other_host.disable("fb")
        other_host.close()
        gate.refresh()  # this host's next poll
        assert (_connects(port_a), _connects(port_b)) == (True, False)
    finally:
        gate.stop()
        ops.close()
        for listener in listeners:
            listener.close()


@pytest.fixture
def listener() -> Iterator[tuple[FrontendListener, list[object], int]]:
    """A worker's listener on a free port, counting the connections it accepts."""
    (port,) = free_ports(1)
    accepted: list[object] = []

    def handle(client: gsocket.socket, address: object) -> None:
        accepted.append(address)
        client.close()

    server = FrontendListener(_listen(port, green=True), "fa", handle=handle)
    server.start()
    try:
        yield server, accepted, port
    finally:
        server.close()


def _connect_and_wait(port: int, seconds: float = 0.2) -> gsocket.socket:
    client = gsocket.create_connection(("127.0.0.1", port), timeout=2)
    gevent.sleep(seconds)
    return client


def test_a_paused_worker_listener_accepts_nothing_until_resumed(
    listener: tuple[FrontendListener, list[object], int],
) -> None:
    server, accepted, port = listener
    _connect_and_wait(port).close()
    assert len(accepted) == 1
    server.pause()
    server._start_accepting_if_started()  # as gevent does once its full pool frees a slot
    waiting = _connect_and_wait(port)  # the kernel queues it; nobody accepts
    assert len(accepted) == 1
    server.resume()
    gevent.sleep(0.2)
    assert len(accepted) == 2
    waiting.close()


def test_a_worker_listener_survives_its_socket_leaving_listen_and_serves_when_it_listens_again(
    listener: tuple[FrontendListener, list[object], int],
) -> None:
    server, accepted, port = listener
    server.socket.shutdown(socket.SHUT_RD)  # the master paused it before this worker knew
    gevent.sleep(RETRY * 4)  # accept failed with EINVAL a few times meanwhile
    assert not server.closed and not _connects(port)
    server.socket.listen(16)  # enabled again
    _connect_and_wait(port, RETRY * 4).close()
    assert len(accepted) == 1


def test_a_worker_learns_the_disabled_frontends_with_each_heartbeat(redis_url: str) -> None:
    config = parse_text(CONFIG.format(a=1, b=2), "gate.cfg")
    fleet = RedisFleetState(redis_url, "test:1")
    seen: list[frozenset[str]] = []
    other_host = FrontendAdmin.connect(redis_url)
    try:
        fleet.attach(config.backends, register=True)
        fleet.on_disabled_frontends(seen.append)
        assert fleet.disabled_frontends() == frozenset()
        fleet.refresh()
        other_host.disable("fa")
        fleet.refresh()
        assert seen == [frozenset(), frozenset({"fa"})]
        assert fleet.disabled_frontends() == frozenset({"fa"})
    finally:
        other_host.close()
        fleet.close()
