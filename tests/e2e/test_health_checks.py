"""Active health checks, fleet-wide: two geoproxy hosts with two workers each, one Redis.

HAProxy configuration manual, section 5.2 "check", "inter", "rise", "fall" (a server is marked
DOWN after ``fall`` consecutive failed checks and UP again after ``rise`` consecutive passed
ones, checks ``inter`` apart), section 4 "option httpchk" (a 2xx or 3xx answer passes), and
DESIGN.md invariant 3: one checker per server in the whole fleet (a lease in Redis), and a
verdict reaches every worker of every host within a second. Each worker is asked on a
keep-alive connection known to be served by it, so "every worker" is checked worker by worker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.fleet_harness import Fleet, Host, WorkerLine, running_fleet, tally, wait_until
from tests.support.processes import ProcessRegistry

INTER, RISE, FALL = 0.2, 2, 2
LEASE_TTL, CLAIM_TICK = 3.0, 0.5  # geoproxy.state.health_store, geoproxy.health.checker

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
    default-server check inter 200ms rise 2 fall 2
    server s1 {s1}
    server s2 {s2}
"""


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2"])
        started.start_hosts(CONFIG, count=2, workers=2)
        yield started


@pytest.fixture
def healthy(fleet: Fleet) -> Fleet:
    """Both servers pass their checks and are UP, and both hosts run all their workers."""
    for backend in fleet.backends.values():
        backend.pass_health()
    wait_until(
        lambda: all(fleet.oper(name) == "up" for name in fleet.backends),
        RISE * INTER + 3,
        "every server is UP",
    )
    for host in fleet.hosts:
        wait_until(lambda host=host: len(host.workers()) == 2, 10, "both workers run")  # type: ignore[misc]
    return fleet


@pytest.fixture
def lines(healthy: Fleet) -> Iterator[list[WorkerLine]]:
    """A keep-alive connection to each of the four workers (two per host)."""
    opened = [line for host in healthy.hosts for line in host.worker_lines()]
    yield opened
    for line in opened:
        line.close()


def _sleep_until(moment: float) -> None:
    time.sleep(max(moment - time.monotonic(), 0))


def test_every_worker_of_both_hosts_stops_using_a_failing_server_within_fall_inter_and_a_second(
    healthy: Fleet, lines: list[WorkerLine]
) -> None:
    for line in lines:
        assert line.served_by(4)["s1"] >= 1, f"worker {line.pid} uses s1"
    healthy.backends["s1"].fail_health()
    failed_at = time.monotonic()
    _sleep_until(failed_at + FALL * INTER + 1.0)
    for line in lines:
        assert line.served_by(4) == {"s2": 4}, f"worker {line.pid} still uses s1"
    assert healthy.oper("s1") == "down"
    logs = "".join(host.output() for host in healthy.hosts)
    assert "Server app/s1 is DOWN, reason: Layer7 wrong status: 503" in logs


def test_every_worker_of_both_hosts_takes_a_server_back_within_rise_inter_and_a_second(
    healthy: Fleet, lines: list[WorkerLine]
) -> None:
    healthy.backends["s1"].fail_health()
    wait_until(lambda: healthy.oper("s1") == "down", FALL * INTER + 2, "s1 is DOWN")
    _sleep_until(time.monotonic() + 1.0)  # every snapshot has it DOWN
    for line in lines:
        assert line.served_by(2) == {"s2": 2}
    healthy.backends["s1"].pass_health()
    passed_at = time.monotonic()
    _sleep_until(passed_at + RISE * INTER + 1.0)
    for line in lines:
        assert line.served_by(4)["s1"] >= 1, f"worker {line.pid} has not taken s1 back"
    logs = "".join(host.output() for host in healthy.hosts)
    assert "Server app/s1 is UP, reason: Layer7 check passed: 200" in logs


def test_a_server_gets_one_check_per_inter_from_the_whole_fleet_not_one_per_worker(
    healthy: Fleet,
) -> None:
    window = 3.0
    backends = healthy.backends.values()
    before = {backend.name: backend.stats()["health_checks"] for backend in backends}
    time.sleep(window)
    for backend in backends:
        checks = backend.stats()["health_checks"] - before[backend.name]
        # one checker: about window / inter (each check starts inter after the previous one
        # ended); four checkers would make four times as many
        assert window / INTER * 0.7 <= checks <= window / INTER + 2, (backend.name, checks)


def _host_of(fleet: Fleet, pid: int) -> Host:
    return next(host for host in fleet.hosts if pid in host.workers())


def test_checks_continue_from_another_process_when_the_checking_worker_is_killed(
    healthy: Fleet,
) -> None:
    checker = healthy.checker_pid("s1")
    assert checker is not None, "somebody holds the check lease of s1"
    host = _host_of(healthy, checker)
    s1 = healthy.backends["s1"]
    os.kill(checker, signal.SIGKILL)
    killed_at = time.monotonic()
    after_kill = s1.stats()["health_checks"]
    wait_until(
        lambda: s1.stats()["health_checks"] > after_kill + 2,
        LEASE_TTL + CLAIM_TICK + 3 * INTER + 1.5,
        "s1 is checked again",
    )
    resumed = time.monotonic() - killed_at
    assert resumed <= LEASE_TTL + CLAIM_TICK + 3 * INTER + 1.5
    assert healthy.checker_pid("s1") not in (checker, None)
    # and the new checker's verdicts count: s1 still goes DOWN when it fails
    s1.fail_health()
    wait_until(lambda: healthy.oper("s1") == "down", FALL * INTER + 2, "s1 is DOWN")
    wait_until(lambda: len(host.workers()) == 2, 10, "gunicorn replaced the killed worker")


def test_geoproxy_state_shows_each_servers_admin_and_health_state_checks_and_weights(
    healthy: Fleet,
) -> None:
    total_before = int(healthy.state()[1]["app"]["s2"]["total"])
    s1 = healthy.backends["s1"]
    s1.fail_health()
    wait_until(lambda: healthy.oper("s1") == "down", FALL * INTER + 2, "s1 is DOWN")
    time.sleep(1.0)  # every worker knows
    assert tally(healthy.ports, 2) == {"s2": 4}
    text, tables = healthy.state()
    assert "backend app (4 live workers, 0 queued in the backend)" in text
    down, up = tables["app"]["s1"], tables["app"]["s2"]
    assert (down["admin"], down["oper"], down["weight"]) == ("ready", "down", "1/1")
    assert down["check"].startswith("L7STS Layer7 wrong status: 503 Service Unavailable (")
    assert down["check"].endswith("ms)")
    assert int(down["streak"].split()[0]) >= FALL and down["streak"].endswith(" failed")
    assert down["changed"].endswith("s ago") and int(down["changed"][:-5]) <= 10
    assert (up["oper"], up["check"].split()[0], up["changed"]) == ("up", "L7OK", "-")
    assert up["streak"].endswith(" ok")
    for row in (down, up):
        assert row["address"] == healthy.backends[row["server"]].address
        assert (row["inflight"], row["queued"], row["errors"], row["backup"]) == (
            "0",
            "0",
            "0",
            "no",
        )
    # totals travel with each worker's statistics (once a second): the 4 requests are in
    # within that, and the reading before may have missed some of the tests before this one
    wait_until(lambda: int(healthy.state()[1]["app"]["s2"]["total"]) >= total_before + 4, 5,
               "the 4 requests in s2's total")


def test_a_host_stopped_gracefully_hands_its_checks_over_at_once(healthy: Fleet) -> None:
    # last in this module: it stops one of the two hosts
    checker = healthy.checker_pid("s1")
    assert checker is not None
    host = _host_of(healthy, checker)
    s1 = healthy.backends["s1"]
    host.stop()
    stopped_at = time.monotonic()
    assert healthy.checker_pid("s1") not in host.workers() + [checker]
    after_stop = s1.stats()["health_checks"]
    wait_until(
        lambda: s1.stats()["health_checks"] >= after_stop + 2,
        CLAIM_TICK + 2 * INTER + 1.0,
        "s1 is checked by the other host without waiting for the lease to expire",
    )
    assert time.monotonic() - stopped_at < LEASE_TTL
