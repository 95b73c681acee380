"""DESIGN.md invariant 1 and issue 7, counted on the wire with MONITOR through real workers
(whose Redis calls share one pipelined connection): each request costs exactly one acquire,
and all Redis commands together stay at most two per request on average."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backends import start_backends
from tests.support.ports import free_port
from tests.support.processes import ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.raw_client import RawConnection
from tests.support.redis_monitor import wire_commands
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
REQUESTS = 1200
CONNECTIONS = 4
CONFIG = """\
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance leastconn
    cookie SERVERID insert indirect nocache
    server s1 127.0.0.1:{backend_port} cookie s1
"""


@pytest.fixture(scope="module")
def proxy_port(
    process_registry: ProcessRegistry,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[int]:
    work: Path = tmp_path_factory.mktemp("round-trips")
    (backend,) = start_backends(process_registry, work, names=["s1"], outlive_test=True)
    proxy: ProxyProcess | None = None
    try:
        config = CONFIG.format(port=free_port(), backend_port=backend.port)
        proxy = start_proxy(process_registry, config, work, redis_server.url, 2, outlive_test=True)
        yield proxy.port
    finally:
        if proxy is not None:
            proxy.stop()
        backend.stop()


def send_requests(port: int, count: int) -> None:
    """``count`` GETs over ``CONNECTIONS`` connections, 20 pipelined at a time on each."""
    request = b"GET / HTTP/1.1\r\nHost: round-trips\r\n\r\n"
    connections = [RawConnection(HOST, port, timeout=10.0) for _ in range(CONNECTIONS)]
    try:
        left = count
        while left:
            batches = []
            for connection in connections:
                batch = min(20, left)
                left -= batch
                connection.send(request * batch)
                batches.append((connection, batch))
            for connection, batch in batches:
                for _ in range(batch):
                    assert connection.read_response().status == 200
    finally:
        for connection in connections:
            connection.close()


def test_each_request_costs_one_acquire_and_at_most_two_commands_on_average(
    proxy_port: int, redis_server: RedisServer
) -> None:
    send_requests(proxy_port, 100)  # warm: connections open, scripts loaded
    with wire_commands(redis_server.url) as counted:
        send_requests(proxy_port, REQUESTS)
    evalsha = counted["EVALSHA"]
    assert REQUESTS <= evalsha, counted  # every request acquired through Redis
    assert sum(counted.values()) <= 2 * REQUESTS, counted
    # under steady load the releases ride on the next acquires: almost no flush of their own
    assert evalsha <= 1.25 * REQUESTS, counted
