"""geoproxy on a Sentinel-managed Redis: ``geoproxy run --redis redis+sentinel://SENTINEL/geo/0``
with two workers, a master, one replica and one Sentinel (quorum 1). The master is killed
(SIGKILL) while traffic runs: no request fails (the workers route on their local snapshot while
the Sentinel fails over), and the fleet converges on the promoted replica: both workers count
their requests there again, and every in-flight count returns to 0 once traffic stops.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.backends import Backend, start_backends
from tests.support.ports import free_port
from tests.support.processes import ROOT, ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.redis_topologies import (
    SentinelGroup,
    need_tools,
    start_sentinel_group,
    wait_until,
)
from tests.support.traffic import Traffic, failures

pytestmark = pytest.mark.e2e
need_tools("redis-server")

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend main
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance leastconn
    option httpchk GET /health
    server s1 {s1} check inter 500ms
    server s2 {s2} check inter 500ms
"""


@dataclass(eq=False)
class Scene:
    group: SentinelGroup
    servers: list[Backend]
    proxy: ProxyProcess
    port: int


@pytest.fixture(scope="module")
def scene(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    directory: Path = tmp_path_factory.mktemp("sentinel")
    group = start_sentinel_group(process_registry, directory / "redis")
    servers: list[Backend] = []
    proxy: ProxyProcess | None = None
    try:
        servers = start_backends(process_registry, directory, 2, outlive_test=True)
        port = free_port()
        config = CONFIG.format(port=port, s1=servers[0].address, s2=servers[1].address)
        proxy = start_proxy(process_registry, config, directory, group.url, 2, outlive_test=True)
        proxy.wait_for_workers(2)
        yield Scene(group, servers, proxy, port)
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()
        group.stop()


def live_workers(scene: Scene) -> int:
    """Workers whose heartbeat the replica (the master-to-be, then the master) holds now."""
    with scene.group.replica.client(socket_timeout=1) as client:
        seconds, micros = client.time()
        return int(client.zcount("gp:{app}:workers", seconds * 1000 + micros // 1000, "+inf"))


def total(scene: Scene) -> int:
    with scene.group.replica.client(socket_timeout=1) as client:
        return sum(int(v) for v in client.hgetall("gp:{app}:total").values())


def inflight(scene: Scene) -> set[int]:
    with scene.group.replica.client(socket_timeout=1) as client:
        return {int(v) for v in client.hgetall("gp:{app}:inflight").values()}


def test_the_master_killed_under_traffic_fails_over_and_no_request_fails(scene: Scene) -> None:
    group = scene.group
    assert group.master_port() == group.master.port
    with Traffic(scene.port, clients=2, max_seconds=60) as traffic:
        traffic.wait_for(20, since=0)
        wait_until(lambda: total(scene) > 0, 5, "counts replicated to the replica")
        group.master.kill()
        killed = time.monotonic()
        wait_until(lambda: group.master_port() == group.replica.port, 30, "the Sentinel's failover")
        promoted = time.monotonic()
        before = total(scene)
        wait_until(lambda: total(scene) >= before + 20, 10, "requests counted on the new master")
        wait_until(lambda: live_workers(scene) == 2, 5, "both workers beating on the new master")
        outcomes = traffic.stop()
    assert failures(outcomes) == []
    assert len(traffic.outcomes(since=killed)) > 20, "requests kept flowing during the failover"
    assert promoted - killed < 30
    wait_until(lambda: inflight(scene) <= {0}, 5, "in-flight counts back to 0")
    output = subprocess.run(
        [sys.executable, "-m", "geoproxy", "state", "--redis", group.url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "backend app (2 live workers" in output, output
    assert [line.split()[0] for line in output.splitlines()[2:4]] == ["s1", "s2"], output
