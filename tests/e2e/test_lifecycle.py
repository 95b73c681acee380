"""Signals and the state command: reloading, refusing a broken reload, stopping, inspecting.

HAProxy management guide, section 4 ("Stopping and restarting HAProxy": a reload re-reads the
configuration and a configuration with errors is refused, the running process serving on; a
soft stop ends every process) and DESIGN.md ("which servers are up, how busy is each" can be
read from Redis without geoproxy running: ``geoproxy state``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.support.backends import Backend
from tests.support.http_client import get
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess, children

Start = Callable[..., ProxyProcess]
StartBackends = Callable[..., list[Backend]]

ROOT = Path(__file__).resolve().parents[2]

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
    balance roundrobin
{servers}
"""


def config(port: int, *servers: str) -> str:
    return CONFIG.format(port=port, servers="\n".join(f"    {line}" for line in servers))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def state_output(redis_url: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-m", "geoproxy", "state", "--redis", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return finished.stdout


def servers_in_redis(redis_url: str) -> list[str]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        return list(client.zrange("gp:{app}:servers", 0, -1))


def served_by(port: int, count: int) -> set[str | None]:
    return {get(port, "/").header("X-Server") for _ in range(count)}


def test_sighup_rereads_the_configuration_and_a_new_server_appears_and_serves(
    proxy: Start, backends: StartBackends, redis_url: str
) -> None:
    s1, s2 = backends(2)
    port = free_port()
    running = proxy(config(port, f"server s1 {s1.address}"))
    assert served_by(port, 4) == {"s1"}
    running.config_path.write_text(
        config(port, f"server s1 {s1.address}", f"server s2 {s2.address} weight 3")
    )
    outcomes: list[object] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set() and len(outcomes) < 2000:
            try:
                outcomes.append(get(port, "/", timeout=5).status)
            except OSError as error:
                outcomes.append(error)

    client = threading.Thread(target=keep_asking)
    client.start()
    try:
        running.send_signal(signal.SIGHUP)
        wait_until(lambda: servers_in_redis(redis_url) == ["s1", "s2"], 10, "s2 in Redis")
        state = state_output(redis_url)
        assert re.search(r"^\s+s2\s+127\.0\.0\.1:\d+\s+ready\s+up\s+3/3\s", state, re.M)
        wait_until(lambda: served_by(port, 8) == {"s1", "s2"}, 10, "requests reach s2")
    finally:
        stop.set()
        client.join(10)
    # the old workers finish what they accepted: no request is lost to the reload
    assert outcomes and set(outcomes) == {200}, [o for o in outcomes if o != 200][:3]


def test_a_broken_configuration_on_sighup_is_refused_and_the_running_one_serves_on(
    proxy: Start, backends: StartBackends, redis_url: str
) -> None:
    (s1,) = backends(1)
    port = free_port()
    running = proxy(config(port, f"server s1 {s1.address}"))
    workers = running.wait_for_workers(2)
    in_flight: list[int] = []
    slow = threading.Thread(target=lambda: in_flight.append(get(port, "/slow?ms=1500").status))
    slow.start()
    wait_until(lambda: s1.stats()["in_flight"] == 1, 5, "slow request in flight")
    running.config_path.write_text(
        config(port, f"server s1 {s1.address}", "server s2 127.0.0.1:notaport")
    )
    running.send_signal(signal.SIGHUP)
    wait_until(lambda: "refused on reload" in running.output(), 10, "reload refused")
    slow.join(10)
    assert in_flight == [200]
    assert served_by(port, 4) == {"s1"}
    assert servers_in_redis(redis_url) == ["s1"]
    # HAProxy leaves the running process alone: no worker was replaced
    assert running.worker_pids() == workers


def test_sigterm_stops_the_master_and_every_worker(proxy: Start, backends: StartBackends) -> None:
    (s1,) = backends(1)
    port = free_port()
    running = proxy(config(port, f"server s1 {s1.address}"))
    workers = running.wait_for_workers(2)
    assert get(port, "/").status == 200
    running.send_signal(signal.SIGTERM)
    assert running.process.process.wait(timeout=15) == 0
    wait_until(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), 5, "workers gone"
    )
    assert children(running.pid) == set()


def test_geoproxy_state_prints_each_servers_state_weight_in_flight_and_total(
    proxy: Start, backends: StartBackends, redis_url: str
) -> None:
    s1, s2 = backends(2)
    port = free_port()
    proxy(
        config(
            port,
            "balance first",
            f"server s1 {s1.address} weight 5",
            f"server s2 {s2.address} disabled",
        )
    )
    for _ in range(3):
        assert get(port, "/").status == 200
    slow = threading.Thread(target=lambda: get(port, "/slow?ms=4000"))
    slow.start()
    wait_until(lambda: s1.stats()["in_flight"] == 1, 5, "slow request in flight")
    output = ""

    def counted_all() -> bool:
        # totals travel with each worker's statistics, flushed once a second
        nonlocal output
        output = state_output(redis_url)
        rows = [line.split() for line in output.splitlines()]
        return any(row[:1] == ["s1"] and row[7] == "4" for row in rows)

    wait_until(counted_all, 3, "the 4 requests in s1's total")
    slow.join(10)
    lines = output.splitlines()
    assert lines[0] == "backend app (2 live workers, 0 queued in the backend)"
    assert lines[1].split() == [
        "server",
        "address",
        "admin",
        "oper",
        "weight",
        "inflight",
        "queued",
        "total",
        "errors",
        "backup",
        "check",
        "streak",
        "changed",
    ]
    # weight is effective/configured; no health check and no transition yet: "-"
    assert lines[2].split() == [
        "s1",
        s1.address,
        "ready",
        "up",
        "5/5",
        "1",
        "0",
        "4",
        "0",
        "no",
        "-",
        "-",
        "-",
    ]
    assert lines[3].split() == [
        "s2",
        s2.address,
        "maint",
        "up",
        "1/1",
        "0",
        "0",
        "0",
        "0",
        "no",
        "-",
        "-",
        "-",
    ]
