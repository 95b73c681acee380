"""Faults under steady traffic (issue 6): two geoproxy hosts of two workers each, three real
servers, one Redis; Redis, a worker, a server and a whole host are killed in turn (SIGKILL)
while clients keep sending (tests/support/fault_drill.py, the machinery of
``scripts/fault_table.py``, with short phases).

- No request is lost, cut or answered 5xx, except those under way at a process at the moment
  it was killed: a proxy worker or host (lost: nobody is left to answer) or a server (HAProxy's
  answer: 502 when nothing was sent yet, or a cut body).
- Redis killed: the hosts serve from their snapshots (DESIGN.md invariant 4); Redis back
  empty: within seconds every server and worker is registered again.
- Worker killed: gunicorn starts another; the dead worker's in-flight counts are given back
  (invariant 2).
- Server killed: passive observation (``observe layer7``, ``on-error mark-down``) marks it
  DOWN; the next requests go to the other servers.
- Host killed: the other host holds every check lease within the lease's TTL and checks those
  servers again (invariant 3); the dead host's workers leave the live set and what they held
  is given back; clients that cannot connect to the dead host use the other one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from geoproxy.health.checker import TICK
from geoproxy.state.health_store import LEASE_TTL_MS
from geoproxy.state.heartbeat import HEARTBEAT_PERIOD, WORKER_TTL_MS
from tests.support.failover_traffic import Kind
from tests.support.fault_drill import Phase, markdown_table, run_drill
from tests.support.fault_fleet import DrillSettings, FaultFleet
from tests.support.processes import ProcessRegistry
from tests.support.redis_topologies import need_tools

pytestmark = pytest.mark.e2e
need_tools("redis-server")

SETTINGS = DrillSettings(phase_seconds=3.0, fault_after=1.0)
PROXY_KILLS = ("worker of host A killed", "a whole host killed (master + workers)")
SERVER_KILL = "server s3 killed"
MARGIN = 1.0  # seconds a loaded machine may add to a bound
# a dead checker's leases expire, then the next claim takes them (DESIGN.md invariant 3)
TAKEOVER_BOUND = LEASE_TTL_MS / 1000 + TICK + MARGIN
# a dead worker's heartbeat goes stale, then the next heartbeat of a live one reaps it (inv. 2)
REAP_BOUND = WORKER_TTL_MS / 1000 + 2 * HEARTBEAT_PERIOD + MARGIN


@pytest.fixture(scope="module")
def phases(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Phase]]:
    directory: Path = tmp_path_factory.mktemp("faults")
    fleet = FaultFleet(process_registry, directory, SETTINGS)
    try:
        fleet.start()
        done = run_drill(fleet)
    finally:
        fleet.stop()
    print(markdown_table(done))
    yield {phase.name: phase for phase in done}


def table(phases: dict[str, Phase]) -> str:
    return "\n" + markdown_table(list(phases.values()))


def test_traffic_flowed_through_every_phase(phases: dict[str, Phase]) -> None:
    for phase in phases.values():
        assert phase.ok >= 50, table(phases)


def test_no_request_is_lost_unless_the_proxy_process_holding_it_was_killed(
    phases: dict[str, Phase],
) -> None:
    for phase in phases.values():
        lost = [r for r in phase.requests if r.kind is Kind.LOST]
        if phase.name in PROXY_KILLS:
            exposed = phase.exposed()
            assert all(r in exposed for r in lost), (phase.name, lost, table(phases))
        else:
            assert lost == [], (phase.name, lost, table(phases))


def test_only_requests_under_way_at_a_killed_server_get_a_5xx_or_a_cut_body(
    phases: dict[str, Phase],
) -> None:
    for phase in phases.values():
        failed = [r for r in phase.requests if r.is_5xx or r.kind is Kind.CUT]
        if phase.name == SERVER_KILL:
            exposed = phase.exposed()
            assert all(r in exposed for r in failed), (failed, table(phases))
            assert len(failed) <= SETTINGS.clients
        else:
            assert failed == [], (phase.name, failed, table(phases))
        assert phase.other == 0, table(phases)


def test_after_redis_comes_back_empty_the_fleet_registers_itself_again_within_seconds(
    phases: dict[str, Phase],
) -> None:
    rebuilt = phases["Redis back, empty"].facts["rebuilt_after"]
    assert rebuilt is not None and float(rebuilt) <= 5.0, table(phases)


def test_gunicorn_replaces_a_killed_worker_and_its_counts_are_reaped(
    phases: dict[str, Phase],
) -> None:
    facts = phases["worker of host A killed"].facts
    assert facts["replaced_after"] is not None, table(phases)
    assert facts["reaped_after"] is not None, table(phases)
    assert float(facts["reaped_after"]) <= REAP_BOUND, table(phases)


def test_a_killed_server_is_marked_down_and_the_next_requests_go_elsewhere(
    phases: dict[str, Phase],
) -> None:
    phase = phases[SERVER_KILL]
    marked = phase.facts["marked_down_after"]
    assert marked is not None and float(marked) <= 2.0, table(phases)
    assert phase.died_at is not None
    after = [r for r in phase.requests if r.started > phase.died_at]
    assert after and all(r.is_2xx and r.server != "s3" for r in after), table(phases)


def test_when_a_host_dies_the_other_takes_over_its_checks_and_reaps_its_workers(
    phases: dict[str, Phase],
) -> None:
    phase = phases["a whole host killed (master + workers)"]
    facts = phase.facts
    assert facts["checks_held"] != 0, "the killed host held no check lease: nothing to take over"
    taken = facts["checks_taken_over_after"]
    assert taken is not None and float(taken) <= TAKEOVER_BOUND, table(phases)
    assert facts["checked_again_after"] is not None, table(phases)
    reaped = facts["workers_reaped_after"]
    assert reaped is not None and float(reaped) <= REAP_BOUND, table(phases)
    assert phase.failovers > 0, table(phases)


def test_in_flight_counts_come_back_to_zero_once_the_traffic_stops(
    phases: dict[str, Phase],
) -> None:
    assert phases["a whole host killed (master + workers)"].facts["drained_after"] is not None
