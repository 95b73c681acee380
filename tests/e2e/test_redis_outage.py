"""When Redis fails, the proxy keeps serving (DESIGN.md invariant 4), through ``geoproxy run``
with two workers and a real redis-server that the test kills, restarts empty, and stalls.

- Redis stops (SIGKILL): no request fails; each worker logs once that it routes from its local
  snapshot.
- Redis comes back empty on the same port: within seconds the fleet has registered its
  backends again (``geoproxy state`` shows them), each worker logs its recovery once, and the
  in-flight counts go back to 0 once traffic stops.
- Redis is slow (``DEBUG SLEEP``, ``CLIENT PAUSE``, a Lua script that runs for seconds and makes
  it answer BUSY): no request waits on it much longer than the Redis timeout, nothing fails, and
  the counts still converge to 0 afterwards.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis import Redis

from geoproxy.state.redis_store import REDIS_TIMEOUT
from tests.support.backends import Backend, start_backends
from tests.support.ports import free_port
from tests.support.processes import ROOT, ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.redis_topologies import RedisNode, need_tools, start_node, wait_until
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

DEGRADED = "Redis unreachable ("
RECOVERED = "Redis reachable again"
LATENCY_MARGIN = 1.0  # seconds beyond the Redis timeout a request may take on a loaded machine


@dataclass(eq=False)
class Scene:
    registry: ProcessRegistry
    directory: Path
    redis: RedisNode
    servers: list[Backend]
    proxy: ProxyProcess
    port: int
    started: list[RedisNode]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def client(self) -> Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def restart_redis_empty(self) -> None:
        self.restart_redis(self.directory / f"redis{len(self.started) + 1}")

    def restart_redis(self, directory: Path) -> None:
        """Start Redis again on the same port, with the data ``directory`` holds (none for a
        new directory)."""
        name = f"redis{len(self.started) + 1}"
        self.redis = start_node(self.registry, directory, port=self.redis.port, name=name)
        self.started.append(self.redis)

    def inflight(self) -> dict[str, int]:
        with self.client() as client:
            return {k: int(v) for k, v in client.hgetall("gp:{app}:inflight").items()}

    def log_count(self, text: str) -> int:
        return self.proxy.output().count(text)


@pytest.fixture(scope="module")
def scene(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    directory = tmp_path_factory.mktemp("outage")
    nodes = [start_node(process_registry, directory / "redis")]
    servers: list[Backend] = []
    proxy: ProxyProcess | None = None
    try:
        servers = start_backends(process_registry, directory, 2, outlive_test=True)
        port = free_port()
        config = CONFIG.format(port=port, s1=servers[0].address, s2=servers[1].address)
        url = f"redis://127.0.0.1:{nodes[0].port}/0"
        proxy = start_proxy(process_registry, config, directory, url, 2, outlive_test=True)
        proxy.wait_for_workers(2)
        yield Scene(process_registry, directory, nodes[0], servers, proxy, port, nodes)
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()
        for node in nodes:
            node.stop()


def totals(scene: Scene) -> dict[str, int]:
    with scene.client() as client:
        return {k: int(v) for k, v in client.hgetall("gp:{app}:total").items()}


def state_output(url: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-m", "geoproxy", "state", "--redis", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return finished.stdout


def test_redis_killed_and_restarted_empty_no_request_fails_and_the_fleet_rebuilds_its_state(
    scene: Scene,
) -> None:
    degraded_before = scene.log_count(DEGRADED)
    recovered_before = scene.log_count(RECOVERED)
    with Traffic(scene.port, clients=2, max_seconds=40) as traffic:
        traffic.wait_for(20, since=0)
        scene.redis.kill()
        killed = time.monotonic()
        wait_until(
            lambda: scene.log_count(DEGRADED) >= degraded_before + 2, 5, "both workers degraded"
        )
        traffic.wait_for(50, since=killed)
        time.sleep(1.0)  # a second of routing on local state alone
        assert scene.log_count(DEGRADED) == degraded_before + 2, "once per worker"

        scene.restart_redis_empty()
        restarted = time.monotonic()
        wait_until(
            lambda: scene.client().zrange("gp:{app}:servers", 0, -1) == ["s1", "s2"],
            5,
            "the backend registered again",
        )
        wait_until(
            lambda: scene.log_count(RECOVERED) >= recovered_before + 2, 5, "both workers back"
        )
        wait_until(lambda: sum(totals(scene).values()) >= 20, 5, "requests counted fleet-wide")
        outcomes = traffic.stop()
    assert len(outcomes) > 150
    assert failures(outcomes) == []
    assert scene.log_count(DEGRADED) == degraded_before + 2
    assert scene.log_count(RECOVERED) == recovered_before + 2
    assert time.monotonic() - restarted < 20

    output = state_output(scene.url)
    assert "backend app (2 live workers" in output, output
    rows = {line.split()[0]: line.split() for line in output.splitlines()[2:] if line.strip()}
    assert set(rows) == {"s1", "s2"}
    assert all(row[3] == "up" for row in rows.values()), output
    wait_until(lambda: set(scene.inflight().values()) <= {0}, 5, "in-flight back to 0")


BUSY_SCRIPT = "while true do end"  # reads nothing, writes nothing: SCRIPT KILL may end it


def stall_redis(scene: Scene, how: str) -> threading.Thread:
    """Block the server for 3 seconds from a side connection, in a thread: ``sleep`` (DEBUG
    SLEEP), ``pause`` (CLIENT PAUSE ALL) or ``script`` (a Lua loop; after 200 ms every client
    gets BUSY replies, until SCRIPT KILL)."""

    def send() -> None:
        with redis.Redis(port=scene.redis.port, socket_timeout=10) as side:
            if how == "sleep":
                side.execute_command("DEBUG", "SLEEP", "3")
            elif how == "pause":
                side.execute_command("CLIENT", "PAUSE", "3000", "ALL")
            else:
                side.config_set("busy-reply-threshold", 200)
                killer = threading.Timer(3.0, kill_script, args=(scene,))
                killer.start()
                with pytest.raises(redis.exceptions.ResponseError):
                    side.eval(BUSY_SCRIPT, 0)
                killer.join(10)
                side.config_set("busy-reply-threshold", 5000)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def kill_script(scene: Scene) -> None:
    with redis.Redis(port=scene.redis.port, socket_timeout=5) as side:
        side.script_kill()


@pytest.mark.parametrize("how", ["sleep", "pause", "script"])
def test_a_stalled_redis_delays_no_request_beyond_its_timeout_and_counts_converge(
    scene: Scene, how: str
) -> None:
    with Traffic(scene.port, "/slow?ms=20", clients=4, max_seconds=30) as traffic:
        traffic.wait_for(20, since=0)
        stalled = time.monotonic()
        side = stall_redis(scene, how)
        time.sleep(3.5)
        side.join(10)
        traffic.wait_for(20, since=time.monotonic())
        outcomes = traffic.stop()
    during = [o for o in outcomes if stalled <= o.started <= stalled + 3]
    assert len(during) > 20, "requests kept flowing while Redis stalled"
    assert failures(outcomes) == []
    slowest = max(o.latency for o in outcomes)
    assert slowest < REDIS_TIMEOUT + LATENCY_MARGIN, slowest
    wait_until(lambda: set(scene.inflight().values()) <= {0}, 5, "in-flight back to 0")


def test_a_reload_while_redis_is_away_is_registered_once_redis_is_back_with_its_old_data(
    scene: Scene,
) -> None:
    """Runs last: it leaves the proxy with a third server."""
    with scene.client() as client:
        client.save()  # the restarted server loads this: Redis returns with the old servers
    old_workers = set(scene.proxy.worker_pids())
    config = CONFIG.format(
        port=scene.port, s1=scene.servers[0].address, s2=scene.servers[1].address
    )
    config += f"    server s3 {scene.servers[0].address} check inter 500ms\n"
    with Traffic(scene.port, clients=2, max_seconds=40) as traffic:
        traffic.wait_for(10, since=0)
        scene.redis.kill()
        scene.proxy.config_path.write_text(config)
        scene.proxy.send_signal(signal.SIGHUP)
        wait_until(
            lambda: "loaded, but Redis is unreachable" in scene.proxy.output(), 10, "the reload"
        )
        wait_until(
            lambda: (
                len(set(scene.proxy.worker_pids()) - old_workers) == 2
                and not old_workers & set(scene.proxy.worker_pids())
            ),
            15,
            "the new workers replacing the old ones",
        )
        scene.restart_redis(scene.redis.directory)
        wait_until(
            lambda: scene.client().zrange("gp:{app}:servers", 0, -1) == ["s1", "s2", "s3"],
            5,
            "s3 registered by the new workers",
        )
        traffic.wait_for(20, since=time.monotonic())
        outcomes = traffic.stop()
    assert failures(outcomes) == []
    assert "registered backends app in Redis" in scene.proxy.output()
