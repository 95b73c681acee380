"""What a proxied request costs in Redis: DESIGN.md invariant 1.

A request's critical path makes at most one Redis call, the acquire script (EVALSHA): the
choice and the count in one round trip. Releases ride on the next acquire or a batched flush,
and the heartbeat refreshes the snapshot twice a second. Under concurrent load a worker's
requests share acquire calls (group commit), so a call serves several requests. Real Redis,
real backend processes; the WSGI app is driven in-process (one request at a time, and so
counted exactly) and through ``geoproxy run``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from werkzeug.test import Client

from geoproxy.config import parse_text
from geoproxy.proxy.app import ProxyApp
from geoproxy.state.redis_store import RedisFleetState
from geoproxy.state.scripts import script_sha
from tests.support.backends import Backend
from tests.support.http_client import get
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess
from tests.support.redis_monitor import round_trips, wire_log

REQUESTS = 200
CONCURRENT, WAVES = 16, 12  # a worker under load: waves of requests in flight at once

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend main
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance {balance}
    server s1 {s1}{limit}
    server s2 {s2}{limit}
"""


ACQUIRE = script_sha("acquire")


def by_kind(recorded: list[list[str]]) -> Counter[str]:
    """Round trips by kind (see ``round_trips``), the acquire script told apart."""
    return round_trips(recorded, {ACQUIRE: "acquire"})


def acquires(kinds: Counter[str]) -> int:
    """The calls that took servers: acquire scripts and transactions."""
    return kinds["acquire"] + kinds["transaction"]


@pytest.fixture
def two_servers(backends: Callable[..., list[Backend]]) -> list[Backend]:
    return backends(2)


@pytest.fixture(params=["", " maxconn 50"], ids=["decided-by-the-worker", "scripted"])
def app(
    redis_url: str, two_servers: list[Backend], request: pytest.FixtureRequest
) -> Iterator[ProxyApp]:
    s1, s2 = two_servers
    text = CONFIG.format(
        port=free_port(), balance="leastconn", s1=s1.address, s2=s2.address, limit=request.param
    )
    config = parse_text(text, "round-trips.cfg")
    master = RedisFleetState(redis_url, "master")
    master.register(config.backends)
    fleet = RedisFleetState(redis_url, "host:1")
    fleet.attach(config.backends)
    app = ProxyApp(config, fleet)
    yield app
    for backend in app._backends.values():  # ProxyApp has no close(): its pools idle on
        for pool in backend.pools.values():
            pool.close()
    fleet.close()
    master.close()


def test_a_proxied_request_makes_exactly_one_redis_round_trip(
    app: ProxyApp, redis_url: str
) -> None:
    """Without maxconn the worker decides and sends one transaction; with it, the acquire script
    decides: one round trip either way."""
    client = Client(app)
    with wire_log(redis_url) as recorded:
        response = client.get("/")
        assert response.status_code == 200
        response.close()
    kinds = by_kind(recorded)
    assert sum(kinds.values()) == acquires(kinds) == 1, kinds


def test_releases_ride_on_the_next_acquire_so_each_request_costs_one_call(
    app: ProxyApp, redis_url: str, two_servers: list[Backend]
) -> None:
    client = Client(app)
    with wire_log(redis_url) as recorded:
        for _ in range(REQUESTS):
            response = client.get("/")
            assert response.status_code == 200
            response.close()
    kinds = by_kind(recorded)
    assert sum(kinds.values()) == acquires(kinds) == REQUESTS, kinds
    assert sum(server.stats()["requests"] for server in two_servers) == REQUESTS


@pytest.mark.parametrize("balance", ["roundrobin", "leastconn"])
def test_under_concurrent_load_a_worker_makes_well_below_one_script_call_per_request(
    proxy: Callable[..., ProxyProcess],
    two_servers: list[Backend],
    redis_url: str,
    balance: str,
) -> None:
    """Group commit (geoproxy/state/group_commit.py): the requests a gevent worker holds at
    once share acquire calls. Waves of CONCURRENT requests reach one worker together; each
    wave's acquires leave in a few calls, and its releases with them or in one flush."""
    s1, s2 = two_servers
    port = free_port()
    config = CONFIG.format(port=port, balance=balance, s1=s1.address, s2=s2.address, limit="")
    proxy(config, workers=1)
    assert get(port, "/").status == 200  # the worker settles in before the count starts
    statuses: list[int] = []
    wave = threading.Barrier(CONCURRENT)

    def client() -> None:
        for _ in range(WAVES):
            wave.wait(timeout=30)
            statuses.append(get(port, "/slow?ms=20").status)

    with wire_log(redis_url) as recorded:
        threads = [threading.Thread(target=client) for _ in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    requests = CONCURRENT * WAVES
    assert statuses == [200] * requests
    kinds = by_kind(recorded)
    assert acquires(kinds) <= requests // 2, kinds
    assert sum(kinds.values()) <= requests // 2, f"heartbeats and flushes included: {kinds}"
