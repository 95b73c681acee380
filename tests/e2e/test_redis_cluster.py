"""geoproxy on a Redis Cluster: three masters made by ``redis-cli --cluster create``, and
``geoproxy run --redis redis+cluster://SEED,SEED`` serving traffic through it.

Every key of a backend shares the hash tag ``{backend}`` (state/keys.py), so each backend's
scripts run on the one node that owns its slot; the backends below are named so that their keys
land on all three masters, which makes every pipeline (heartbeat, releases, ``geoproxy state``)
span nodes. Proves: acquire and release, the heartbeat (live workers), active health checks
under their leases, a maxconn queue, and a stick table, all through the cluster.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from redis.cluster import RedisCluster

from tests.support.backends import Backend, start_backends
from tests.support.http_client import get
from tests.support.ports import free_port
from tests.support.processes import ROOT, ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.redis_topologies import RedisNode, need_tools, start_cluster, wait_until

pytestmark = pytest.mark.e2e
need_tools("redis-server", "redis-cli")

# Slots: app 6805, b1 2874, queued 12415, sticky 3852: the three masters each own some.
CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout queue 5s

frontend main
    bind 127.0.0.1:{port}
    use_backend b1 if {{ hdr(host) -i b1.test }}
    use_backend queued if {{ hdr(host) -i queued.test }}
    use_backend sticky if {{ hdr(host) -i sticky.test }}
    default_backend app

backend app
    balance leastconn
    server s1 {s1}
    server s2 {s2}

backend b1
    balance roundrobin
    option httpchk GET /health
    server s1 {s1} check inter 300ms fall 1 rise 1
    server s2 {s2} check inter 300ms fall 1 rise 1

backend queued
    balance roundrobin
    server s1 {s1} maxconn 1

backend sticky
    balance roundrobin
    stick-table type string len 32 size 1k expire 30s
    stick on url_param(uid)
    server s1 {s1}
    server s2 {s2}
"""
BACKENDS = ("app", "b1", "queued", "sticky")
CONVERGED = 0.2  # seconds after a write when every worker routes by it (the heartbeat: 0.5 s)


@dataclass(eq=False)
class Scene:
    nodes: list[RedisNode]
    servers: list[Backend]
    proxy: ProxyProcess
    port: int

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes[:2])

    def cluster(self) -> RedisCluster:
        node = self.nodes[0]
        return RedisCluster(host="127.0.0.1", port=node.port, decode_responses=True)

    def get(self, host: str, path: str = "/") -> tuple[int, str]:
        answer = get(self.port, path, headers={"Host": host})
        return answer.status, answer.header("X-Server") or ""

    def state(self) -> str:
        return subprocess.run(
            [sys.executable, "-m", "geoproxy", "state", "--redis", self.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout


@pytest.fixture(scope="module")
def scene(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    directory: Path = tmp_path_factory.mktemp("cluster")
    nodes = start_cluster(process_registry, directory / "redis")
    servers: list[Backend] = []
    proxy: ProxyProcess | None = None
    try:
        servers = start_backends(process_registry, directory, 2, outlive_test=True)
        port = free_port()
        config = CONFIG.format(port=port, s1=servers[0].address, s2=servers[1].address)
        url = "redis+cluster://" + ",".join(node.address for node in nodes[:2])
        proxy = start_proxy(process_registry, config, directory, url, 2, outlive_test=True)
        proxy.wait_for_workers(2)
        yield Scene(nodes, servers, proxy, port)
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()
        for node in nodes:
            node.stop()


def test_each_backend_is_counted_on_the_master_that_owns_its_slot(scene: Scene) -> None:
    for host in ("app.test", "b1.test", "queued.test", "sticky.test"):
        for _ in range(4):
            assert scene.get(host)[0] == 200
    cluster = scene.cluster()
    # redis-py leaves RedisCluster.get_node_from_key unannotated
    locate = cast(Any, cluster).get_node_from_key
    owners: dict[str, int] = {name: locate(f"gp:{{{name}}}:total").port for name in BACKENDS}
    assert set(owners.values()) == {node.port for node in scene.nodes}, "all three masters"
    for name, port in owners.items():
        node = next(n for n in scene.nodes if n.port == port)

        def counted(node: Any = node, name: str = name) -> bool:
            with node.client() as client:
                totals = client.hgetall(f"gp:{{{name}}}:total")
            return sum(int(v) for v in totals.values()) == 4

        # totals travel with each worker's statistics, flushed once a second
        wait_until(counted, 5, f"4 requests counted for {name}")
    wait_until(
        lambda: all(
            set(cluster.hgetall(f"gp:{{{name}}}:inflight").values()) <= {"0"} for name in BACKENDS
        ),
        5,
        "releases flushed to every node",
    )
    cluster.close()


def test_geoproxy_state_reads_every_backend_and_both_live_workers_from_the_cluster(
    scene: Scene,
) -> None:
    scene.get("app.test")
    output = scene.state()
    headers = [line for line in output.splitlines() if line.startswith("backend ")]
    assert [line.split()[1] for line in headers] == sorted(BACKENDS)
    assert all("(2 live workers" in line for line in headers), output


def test_health_checks_take_a_failing_server_out_and_back_through_the_cluster(
    scene: Scene,
) -> None:
    s2 = scene.servers[1]
    cluster = scene.cluster()
    try:
        s2.fail_health()
        wait_until(lambda: cluster.hget("gp:{b1}:srv:s2", "oper") == "down", 5, "s2 marked down")
        wait_until(
            lambda: {scene.get("b1.test")[1] for _ in range(6)} == {"s1"}, 5, "workers avoid s2"
        )
    finally:
        s2.pass_health()
    wait_until(lambda: cluster.hget("gp:{b1}:srv:s2", "oper") == "up", 5, "s2 up again")
    leases = [cluster.get(f"gp:{{b1}}:chk:{name}") for name in ("s1", "s2")]
    assert all(leases), "each server's check lease is held by one worker"
    cluster.close()


def test_a_change_written_on_any_master_reaches_both_workers_at_once(scene: Scene) -> None:
    """The watcher keeps one connection per primary (state/watcher.py): a change of backend
    ``app`` (slot 6805) and one of ``sticky`` (slot 3852), on two masters, each reach every
    worker well within a heartbeat (0.5 s)."""
    cluster = scene.cluster()
    try:
        for backend, host in (("app", "app.test"), ("sticky", "sticky.test")):
            cluster.hset(f"gp:{{{backend}}}:srv:s1", "admin", "maint")
            time.sleep(CONVERGED)
            answered = [scene.get(host)[1] for _ in range(8)]  # new connections: both workers
            assert answered == ["s2"] * 8, (backend, answered)
            cluster.hset(f"gp:{{{backend}}}:srv:s1", "admin", "ready")
    finally:
        for backend in ("app", "sticky"):
            cluster.hset(f"gp:{{{backend}}}:srv:s1", "admin", "ready")
        cluster.close()


def test_a_maxconn_queue_runs_through_the_cluster(scene: Scene) -> None:
    s1 = scene.servers[0]
    s1.reset_stats()
    answers: list[int] = []

    def slow() -> None:
        answers.append(get(scene.port, "/slow?ms=300", headers={"Host": "queued.test"}).status)

    threads = [threading.Thread(target=slow) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert answers == [200] * 4
    assert s1.stats()["max_in_flight"] == 1, "maxconn 1 held fleet-wide: the others queued"


def test_a_stick_table_keeps_a_user_on_one_server_through_the_cluster(scene: Scene) -> None:
    served = Counter(scene.get("sticky.test", "/?uid=alice")[1] for _ in range(6))
    assert len(served) == 1, served
    cluster = scene.cluster()
    assert cluster.get("gp:{sticky}:stick:alice") in served
    cluster.close()
