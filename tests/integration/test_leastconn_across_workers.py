"""leastconn counts every worker's requests, not only its own.

HAProxy configuration manual, "balance leastconn": "The server with the lowest number of
connections receives the connection". Across gunicorn workers (and hosts), that number lives
in Redis: two ProxyApp instances with fleet states of different worker ids, in one process
against real backend processes, stand for two workers that cannot be addressed separately
through one gunicorn. A worker sees every other worker's requests made before its own last
call to Redis, and all of them once its counts are older than ``leases.FRESH``
(geoproxy/state/leases.py, rule 2).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from werkzeug.test import Client

from geoproxy.config import parse_text
from geoproxy.proxy.app import ProxyApp
from geoproxy.state.leases import FRESH
from geoproxy.state.redis_store import RedisFleetState
from tests.support.backends import Backend

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend main
    bind 127.0.0.1:8080
    default_backend app

backend app
    balance leastconn
    server s1 {s1}
    server s2 {s2}
"""


@pytest.fixture
def servers(backends: Callable[..., list[Backend]]) -> list[Backend]:
    return backends(2)


@pytest.fixture
def workers(redis_url: str, servers: list[Backend]) -> Iterator[tuple[ProxyApp, ProxyApp]]:
    s1, s2 = servers
    config = parse_text(CONFIG.format(s1=s1.address, s2=s2.address), "leastconn.cfg")
    master = RedisFleetState(redis_url, "master")
    master.register(config.backends)
    apps = []
    for worker in ("host-a:1", "host-b:2"):
        fleet = RedisFleetState(redis_url, worker)
        fleet.attach(config.backends)
        apps.append(ProxyApp(config, fleet))
    yield apps[0], apps[1]
    for app in apps:
        for backend in app._backends.values():  # ProxyApp has no close(): its pools idle on
            for pool in backend.pools.values():
                pool.close()
        app.fleet.close()  # type: ignore[attr-defined]
    master.close()


def served_by(app: ProxyApp, path: str) -> str | None:
    response = Client(app).get(path)
    try:
        assert response.status_code == 200
        return response.headers.get("X-Server")
    finally:
        response.close()


def wait_for_in_flight(servers: list[Backend], count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(server.stats()["in_flight"] for server in servers) != count:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not {count} requests in flight")
        time.sleep(0.02)


def test_requests_through_worker_b_avoid_the_server_worker_a_keeps_busy(
    workers: tuple[ProxyApp, ProxyApp], servers: list[Backend]
) -> None:
    worker_a, worker_b = workers
    held: list[str | None] = []
    holder = threading.Thread(target=lambda: held.append(served_by(worker_a, "/slow?ms=1500")))
    holder.start()
    wait_for_in_flight(servers, 1)
    busy = next(server.name for server in servers if server.stats()["in_flight"])
    time.sleep(FRESH)  # worker B's counts are older than that: its next request reads them
    served = Counter(served_by(worker_b, "/") for _ in range(10))
    holder.join(10)
    assert held == [busy]
    assert served == Counter({"s2" if busy == "s1" else "s1": 10})


def test_requests_taking_turns_through_two_workers_are_spread_evenly(
    workers: tuple[ProxyApp, ProxyApp], servers: list[Backend]
) -> None:
    threads = []
    loads = []
    for i in range(4):
        thread = threading.Thread(target=served_by, args=(workers[i % 2], "/slow?ms=1500"))
        thread.start()
        threads.append(thread)
        wait_for_in_flight(servers, i + 1)
        loads.append(sorted(server.stats()["in_flight"] for server in servers))
        time.sleep(FRESH)  # each worker's next request reads the fleet's counts
    # Workers counting only their own requests would both start with the same server: [0, 2]
    assert loads == [[0, 1], [1, 1], [1, 2], [2, 2]]
    for thread in threads:
        thread.join(10)
