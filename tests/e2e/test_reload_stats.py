"""SIGHUP with a changed server list: requests in flight finish, and the fleet's state converges
in Redis: a removed server disappears from the state keys, the stats page, the CSV and the
metrics (HAProxy reloads the same way: a new configuration, old sessions drained)."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
import redis

from tests.support.backends import Backend
from tests.support.ports import free_ports
from tests.support.proxy_process import ProxyProcess
from tests.support.stats_client import StatsClient

pytestmark = pytest.mark.e2e

CONFIG = """
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

listen stats
    bind 127.0.0.1:{stats}
    stats uri /
    stats auth admin:s3cret

frontend web
    bind 127.0.0.1:{web}
    default_backend app

backend app
{servers}
"""


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_server_removed_on_reload_leaves_redis_and_the_stats_while_requests_in_flight_finish(
    backends: Callable[..., list[Backend]], proxy: Callable[..., ProxyProcess], redis_url: str
) -> None:
    s1, s2 = backends(2)
    stats_port, web = free_ports(2)
    lines = [f"    server s1 {s1.address}", f"    server s2 {s2.address}"]
    running = proxy(CONFIG.format(stats=stats_port, web=web, servers="\n".join(lines)))
    stats = StatsClient(stats_port, "/", ("admin", "s3cret"))
    for _ in range(6):
        assert get(web, "/")[0] == 200
    assert ("app", "s2") in stats.wait_csv(lambda rows: ("app", "s2") in rows)

    slow: list[tuple[int, bytes]] = []
    waiter = threading.Thread(target=lambda: slow.append(get(web, "/slow?ms=1500")))
    waiter.start()
    time.sleep(0.3)
    running.config_path.write_text(
        CONFIG.format(stats=stats_port, web=web, servers=lines[0])
    )
    os.kill(running.pid, signal.SIGHUP)
    waiter.join(timeout=15)
    assert slow and slow[0][0] == 200, "the request in flight during the reload finished"

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and client.zrange("gp:{app}:servers", 0, -1) != ["s1"]:
            time.sleep(0.1)
        assert client.zrange("gp:{app}:servers", 0, -1) == ["s1"]
        assert not client.exists("gp:{app}:srv:s2")
        assert "s2" not in client.hgetall("gp:{app}:total")
    finally:
        client.close()
    rows = stats.csv()
    assert [sv for px, sv in rows if px == "app"] == ["s1", "BACKEND"]
    assert 'id="app/s2"' not in stats.request("GET", "/").text
    assert not any(("server", "s2") in labels for _, labels in stats.metrics())
    deadline = time.monotonic() + 10
    answers: set[bytes] = set()
    while time.monotonic() < deadline:
        answers = {get(web, "/")[1] for _ in range(6)}
        if answers == {b"served by s1"}:
            break
        time.sleep(0.2)  # old workers finish their keep-alive connections
    assert answers == {b"served by s1"}
