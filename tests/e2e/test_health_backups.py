"""Backup servers, fleet-wide: two geoproxy hosts (two workers each) sharing one Redis.

HAProxy configuration manual, section 5.2 "backup" (a backup server is used only when every
primary server is down) and section 4 "option allbackups" (by default only the first
operational backup server is used; with the option, all of them share the load). Health checks
decide which servers are down; every worker of both hosts follows within fall x inter + 1 s.
Section 5.2 "on-marked-up shutdown-backup-sessions": a primary coming back UP cuts the
sessions of the backups, so that it takes all the traffic back at once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.fleet_harness import Fleet, Stream, WorkerLine, running_fleet, wait_until
from tests.support.processes import ProcessRegistry

INTER, FALL = 0.2, 1

CONFIG = """\
defaults
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    use_backend all if {{ hdr(x-backend) -i all }}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health
    default-server check inter 200ms rise 1 fall 1
    server p1 {p1} on-marked-up shutdown-backup-sessions
    server p2 {p2} on-marked-up shutdown-backup-sessions
    server b1 {b1} backup
    server b2 {b2} backup

backend all
    balance roundrobin
    option allbackups
    option httpchk GET /health
    default-server check inter 200ms rise 1 fall 1
    server p1 {p1}
    server p2 {p2}
    server b1 {b1} backup
    server b2 {b2} backup
"""

ALL = {"X-Backend": "all"}


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["p1", "p2", "b1", "b2"])
        started.start_hosts(CONFIG, count=2, workers=2)
        yield started


def _all_up(fleet: Fleet) -> bool:
    return all(
        fleet.oper(name, backend) == "up" for name in fleet.backends for backend in ("app", "all")
    )


@pytest.fixture
def lines(fleet: Fleet) -> Iterator[list[WorkerLine]]:
    """Every server healthy and UP, then a keep-alive connection to each of the 4 workers."""
    for backend in fleet.backends.values():
        backend.pass_health()
    wait_until(lambda: _all_up(fleet), 3, "every server is UP")
    time.sleep(1.0)  # and every worker knows it
    opened = [line for host in fleet.hosts for line in host.worker_lines()]
    yield opened
    for line in opened:
        line.close()


def _fail(fleet: Fleet, *names: str) -> None:
    for name in names:
        fleet.backends[name].fail_health()
    failed_at = time.monotonic()
    wait_until(
        lambda: all(fleet.oper(n, b) == "down" for n in names for b in ("app", "all")),
        FALL * INTER + 2,
        f"{names} DOWN",
    )
    time.sleep(max(failed_at + FALL * INTER + 1.0 - time.monotonic(), 0))


def _served(
    lines: list[WorkerLine], count: int, headers: dict[str, str] | None = None
) -> Counter[str]:
    served: Counter[str] = Counter()
    for line in lines:
        served += line.served_by(count, headers=headers)
    return served


def test_backups_take_nothing_while_a_primary_is_up(fleet: Fleet, lines: list[WorkerLine]) -> None:
    assert set(_served(lines, 4)) == {"p1", "p2"}
    assert set(_served(lines, 4, ALL)) == {"p1", "p2"}
    _fail(fleet, "p1")
    assert _served(lines, 4) == {"p2": 16}
    assert _served(lines, 4, ALL) == {"p2": 16}


def test_only_the_first_backup_serves_once_every_primary_is_down(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    _fail(fleet, "p1", "p2")
    assert _served(lines, 4) == {"b1": 16}
    _fail(fleet, "b1")
    assert _served(lines, 4) == {"b2": 16}, "the next operational backup takes over"


def test_allbackups_spreads_the_load_over_every_backup(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    _fail(fleet, "p1", "p2")
    for line in lines:
        assert line.served_by(4, headers=ALL) == {"b1": 2, "b2": 2}, f"worker {line.pid}"


def test_a_returning_primary_takes_the_traffic_back_from_the_backups(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    _fail(fleet, "p1", "p2")
    assert _served(lines, 2) == {"b1": 8}
    fleet.backends["p2"].pass_health()
    time.sleep(INTER + 1.0)  # rise 1
    assert _served(lines, 4) == {"p2": 16}
    assert _served(lines, 4, ALL) == {"p2": 16}


def test_a_primary_marked_up_with_shutdown_backup_sessions_cuts_the_backups_streams(
    fleet: Fleet, lines: list[WorkerLine]
) -> None:
    _fail(fleet, "p1", "p2")
    cut = Stream(fleet.ports[0], "app")  # its primaries ask for backup sessions to be cut
    kept = Stream(fleet.ports[1], "all")  # the same servers, without the option
    try:
        cut.start()
        kept.start()
        wait_until(lambda: cut.received > 1_000_000 and kept.received > 1_000_000, 5, "streams")
        fleet.backends["p1"].pass_health()
        passed_at = time.monotonic()
        wait_until(lambda: cut.ended_at is not None, INTER + 2.5, "the backup's stream is cut")
        assert cut.ended_at is not None and cut.ended_at - passed_at <= INTER + 2.5
        assert cut.received < Stream.SIZE
        still = kept.received
        wait_until(lambda: kept.received > still + 1_000_000, 3, "the other stream goes on")
        assert kept.ended_at is None
    finally:
        cut.stop.set()
        kept.stop.set()
