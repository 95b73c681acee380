"""Health checks while Redis is away: one geoproxy host with two workers.

DESIGN.md invariant 4 (if Redis goes away the proxy keeps serving from its last snapshot, logs
it once, and converges again when Redis returns) and invariant 3 (checks are recorded only
under a lease in Redis, so while Redis is away nobody checks, and checking resumes after).
Redis is frozen with SIGSTOP, so every call to it times out, as with a lost network.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.fleet_harness import Fleet, running_fleet, tally, wait_until
from tests.support.processes import ProcessRegistry

CONFIG = """\
defaults
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health
    default-server check inter 200ms rise 1 fall 1
    server s1 {s1}
    server s2 {s2}
"""


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2"])
        started.start_hosts(CONFIG, count=1, workers=2)
        yield started


def test_a_redis_outage_pauses_health_checks_logs_it_once_and_checking_resumes_after(
    fleet: Fleet,
) -> None:
    (host,) = fleet.hosts
    os.kill(fleet.redis_pid, signal.SIGSTOP)
    try:
        assert set(tally(fleet.ports, 6)) == {"s1", "s2"}, "served from the last snapshot"
        time.sleep(2.5)
    finally:
        os.kill(fleet.redis_pid, signal.SIGCONT)
    output = host.output()
    assert output.count("health checks paused") == 2, "once per worker"
    assert "health checker tick failed" not in output
    assert "health check of app/" not in output
    fleet.backends["s1"].fail_health()
    wait_until(lambda: fleet.oper("s1") == "down", 3.0, "checks resumed: s1 is DOWN")
    time.sleep(1.0)
    assert tally(fleet.ports, 6) == {"s2": 6}
    assert host.output().count("health checks resume: Redis answers again") == 2
