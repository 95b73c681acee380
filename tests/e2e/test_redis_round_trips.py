"""DESIGN.md invariant 1, counted on the wire with MONITOR through real workers (whose Redis
calls share one pipelined connection): every request is counted in Redis, the requests a
worker holds at once share calls (group commit; a busy worker's plain requests are counted by
its flusher's calls alone, one per 10 ms window), and all Redis commands together stay below
one round trip per request on average."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.backends import start_backends
from tests.support.ports import free_port
from tests.support.processes import ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.raw_client import RawConnection
from tests.support.redis_monitor import round_trips, wire_log
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
REQUESTS = 1200
WARM = 100
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


def test_requests_share_round_trips_and_cost_less_than_one_each(
    proxy_port: int, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    send_requests(proxy_port, WARM)  # warm: connections open, scripts loaded
    # every request is counted through Redis, none only locally: the totals (which travel
    # with each worker's statistics, within a second) count them all
    assert counted_within(client, WARM)
    with wire_log(redis_server.url) as recorded:
        send_requests(proxy_port, REQUESTS)
    assert counted_within(client, WARM + REQUESTS)
    client.close()
    # under steady load releases ride on the calls that count the requests, which several
    # requests share: fewer round trips than requests, heartbeats and statistics included
    trips = round_trips(recorded)
    # the request path's round trips (transactions and scripts: acquires, releases,
    # statistics); the rest is each process's heartbeat and the master's frontend poll, a few
    # commands a second whatever the traffic
    assert trips["transaction"] + trips["script"] < REQUESTS, trips


def counted_within(client: redis.Redis, requests: int, seconds: float = 5.0) -> bool:
    """Whether the backend's totals reach ``requests`` within ``seconds``, and not beyond."""
    deadline = time.monotonic() + seconds
    while True:
        total = sum(int(count) for count in client.hgetall("gp:{be}:total").values())
        if total >= requests or time.monotonic() > deadline:
            return total == requests
        time.sleep(0.1)
