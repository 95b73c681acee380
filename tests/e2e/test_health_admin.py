"""Operator actions, fleet-wide: admin states, weights and slowstart through two geoproxy hosts
(two workers each) sharing one Redis.

HAProxy configuration manual, section 5.2 "disabled" (the server starts in MAINT), "weight",
"slowstart" (a server coming back UP gets its weight progressively over the period), section
4 "cookie" (a persistent client of a DRAIN server stays on it; one of a server in MAINT, or DOWN,
is balanced elsewhere), and the runtime API's "set server <b>/<s> state ready|drain|maint" and
"set server <b>/<s> weight <w>[%]" (management guide 9.3), given here by ``geoproxy set`` or by
writing the server's hash in Redis directly: every worker of every host applies either within
a second (DESIGN.md invariant 3).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.fleet_harness import (
    Fleet,
    WorkerLine,
    running_fleet,
    tally,
    wait_until,
)
from tests.support.processes import ProcessRegistry

PROPAGATION = 1.0  # DESIGN.md invariant 3: an action reaches every worker within a second
SLOWSTART = 6.0

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
    cookie SRV insert indirect nocache
    option httpchk GET /health
    default-server check inter 200ms rise 1 fall 1 weight 10
    server s1 {s1} cookie s1 slowstart 6s
    server s2 {s2} cookie s2
    server s3 {s3} cookie s3 disabled
"""

S1 = "gp:{app}:srv:s1"
TO_S1 = {"Cookie": "SRV=s1"}


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2", "s3"])
        started.start_hosts(CONFIG, count=2, workers=2)
        yield started


@pytest.fixture
def lines(fleet: Fleet) -> Iterator[list[WorkerLine]]:
    """The configured state back (s1, s2 ready and UP at weight 10, s3 in MAINT), then a
    keep-alive connection to each of the four workers."""
    for name, admin in (("s1", "ready"), ("s2", "ready"), ("s3", "maint")):
        fleet.redis.hset(f"gp:{{app}}:srv:{name}", mapping={"admin": admin, "weight": 10})
        fleet.backends[name].pass_health()
    wait_until(lambda: fleet.oper("s1") == "up", 3, "s1 is UP")
    up_since = int(fleet.server("s1").get("up_since", 0))
    seconds, micros = fleet.redis.time()
    ramped = up_since / 1000 + SLOWSTART - (seconds + micros / 1e6)
    time.sleep(max(ramped, 0) + PROPAGATION)
    opened = [line for host in fleet.hosts for line in host.worker_lines()]
    yield opened
    for line in opened:
        line.close()


def _after_propagation(acted_at: float) -> None:
    time.sleep(max(acted_at + PROPAGATION - time.monotonic(), 0))


def test_a_server_disabled_in_the_configuration_starts_in_maint_and_takes_nobody(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    assert fleet.server("s3")["admin"] == "maint"
    for line in lines:
        assert "s3" not in line.served_by(4)
        assert "s3" not in line.served_by(2, headers={"Cookie": "SRV=s3"})
    done = fleet.cli("set", "server", "app/s3", "state", "ready")
    assert done.returncode == 0, done.stderr
    _after_propagation(time.monotonic())
    for line in lines:
        assert line.served_by(3)["s3"] >= 1, f"worker {line.pid} does not use s3 yet"


def test_drain_set_by_geoproxy_set_keeps_persistent_clients_and_sends_new_ones_elsewhere(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    done = fleet.cli("set", "server", "app/s1", "state", "drain")
    assert done.returncode == 0, done.stderr
    assert "app/s1: state set to drain" in done.stdout
    _after_propagation(time.monotonic())
    for line in lines:
        assert "s1" not in line.served_by(4), f"worker {line.pid} sends new clients to s1"
        answer = line.get("/", TO_S1)
        assert answer.header("X-Server") == "s1", f"worker {line.pid} lost s1's client"
        assert answer.header("Set-Cookie") is None
    assert fleet.server("s1")["admin"] == "drain"


def test_maint_written_into_the_server_hash_sends_nobody_to_the_server(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    fleet.redis.hset(S1, "admin", "maint")  # redis-cli HSET 'gp:{app}:srv:s1' admin maint
    _after_propagation(time.monotonic())
    for line in lines:
        assert "s1" not in line.served_by(4)
        answer = line.get("/", TO_S1)
        assert answer.header("X-Server") == "s2", f"worker {line.pid} kept s1's client"
        assert answer.header("Set-Cookie") == "SRV=s2; path=/"
    fleet.redis.hset(S1, "admin", "ready")
    _after_propagation(time.monotonic())
    for line in lines:
        assert line.served_by(4)["s1"] >= 1, f"worker {line.pid} has not taken s1 back"
        assert line.get("/", TO_S1).header("X-Server") == "s1"


def test_maint_set_by_geoproxy_set_reaches_both_hosts_within_a_second(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    done = fleet.cli("set", "server", "app/s2", "state", "maint")
    assert done.returncode == 0, done.stderr
    _after_propagation(time.monotonic())
    for line in lines:
        assert line.served_by(4) == {"s1": 4}
    assert tally(fleet.ports, 10) == {"s1": 20}


def test_weight_changes_shift_the_distribution_on_every_worker(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    for line in lines:
        assert line.served_by(8)["s1"] in (3, 4, 5)
    done = fleet.cli("set", "server", "app/s1", "weight", "300%")
    assert done.returncode == 0, done.stderr
    assert fleet.server("s1")["weight"] == "30"
    _after_propagation(time.monotonic())
    for line in lines:
        assert line.served_by(8)["s1"] >= 5, f"worker {line.pid} ignores weight 30"

    assert fleet.cli("set", "server", "app/s1", "weight", "0").returncode == 0
    _after_propagation(time.monotonic())
    for line in lines:
        assert "s1" not in line.served_by(4), f"worker {line.pid} sends new clients to s1"
        assert line.get("/", TO_S1).header("X-Server") == "s1", "weight 0 keeps persistent ones"

    fleet.redis.hset(S1, "weight", 10)
    _after_propagation(time.monotonic())
    for line in lines:
        assert line.served_by(4)["s1"] >= 1


def test_a_refused_weight_or_state_changes_nothing_and_says_why(fleet: Fleet) -> None:
    bad_weight = fleet.cli("set", "server", "app/s1", "weight", "300")
    assert bad_weight.returncode != 0
    assert "256" in bad_weight.stderr
    bad_state = fleet.cli("set", "server", "app/s1", "state", "sleeping")
    assert bad_state.returncode != 0
    assert "ready, drain or maint" in bad_state.stderr
    unknown = fleet.cli("set", "server", "app/nope", "state", "drain")
    assert unknown.returncode != 0
    assert "app/nope" in unknown.stderr
    assert fleet.server("s1")["weight"] == "10"
    assert fleet.server("s1")["admin"] == "ready"


def test_a_relative_weight_is_rounded_down_and_capped_at_256_as_haproxy_does(fleet: Fleet) -> None:
    # haproxy 2.6.12's "set server app/s weight N%": 150% of 1 is 1, 3000% of 10 is 256
    assert fleet.cli("set", "server", "app/s1", "weight", "199%").returncode == 0
    assert fleet.server("s1")["weight"] == "19"
    assert fleet.cli("set", "server", "app/s1", "weight", "3000%").returncode == 0
    assert fleet.server("s1")["weight"] == "256"


def test_slowstart_ramps_a_returning_server_up_to_its_weight(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    s1 = fleet.backends["s1"]
    s1.fail_health()
    wait_until(lambda: fleet.oper("s1") == "down", 2, "s1 is DOWN")
    s1.pass_health()
    wait_until(lambda: fleet.oper("s1") == "up", 2, "s1 is UP")
    up_at = time.monotonic()
    time.sleep(0.6)  # every worker has seen it UP
    early: Counter[str] = Counter()
    for line in lines:
        early += line.served_by(10)
    assert time.monotonic() - up_at < 2.5, "the early sample took too long to mean anything"
    # effective weight at most ceil(10 * 2.5 / 6) = 5 against s2's 10: a third, not half
    assert 1 <= early["s1"] <= 16, early
    effective, configured = _state_row(fleet, "s1")["weight"].split("/")
    assert time.monotonic() - up_at < 5.4, "geoproxy state answered too late to see the ramp"
    assert configured == "10" and 1 <= int(effective) <= 9, (effective, configured)

    time.sleep(max(up_at + SLOWSTART + PROPAGATION - time.monotonic(), 0))
    late: Counter[str] = Counter()
    for line in lines:
        late += line.served_by(10)
    assert 18 <= late["s1"] <= 22, late
    assert _state_row(fleet, "s1")["weight"] == "10/10"


def _state_row(fleet: Fleet, server: str) -> dict[str, str]:
    """The row of ``server`` of backend app in ``geoproxy state``."""
    return fleet.state()[1]["app"][server]
