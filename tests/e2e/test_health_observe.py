"""Passive health and session shutdown, fleet-wide: two geoproxy hosts (two workers each)
sharing one Redis.

HAProxy configuration manual, section 5.2 "observe layer7" (HTTP responses count: 5xx but
501 and 505 are errors), "error-limit" (consecutive errors before ``on-error`` acts),
"on-error mark-down" (the server is marked DOWN at once, as if its checks had failed) and
"on-marked-down shutdown-sessions" (when a server goes DOWN, the sessions it serves are cut at
once), "on-error fastinter" (the next check comes after ``fastinter``, not ``inter``). The
error count is the fleet's: errors seen by different hosts add up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.fleet_harness import Fleet, Stream, WorkerLine, request, running_fleet, wait_until
from tests.support.processes import ProcessRegistry

INTER, FALL = 0.2, 1

CONFIG = """\
defaults
    mode http
    timeout connect 500ms
    timeout client 20s
    timeout server 20s

frontend web
    bind 127.0.0.1:{port}
    use_backend cut if {{ hdr(x-backend) -i cut }}
    use_backend kept if {{ hdr(x-backend) -i kept }}
    use_backend hasty if {{ hdr(x-backend) -i hasty }}
    default_backend app

backend app
    balance first
    option httpchk GET /health
    server s1 {s1} check inter 4s rise 2 observe layer7 error-limit 3 on-error mark-down
    server s2 {s2} check inter 4s

backend cut
    option httpchk GET /health
    server s3 {s3} check inter 200ms rise 1 fall 1 on-marked-down shutdown-sessions

backend kept
    option httpchk GET /health
    server s4 {s4} check inter 200ms rise 1 fall 1

backend hasty
    option httpchk GET /health
    server s5 {s5} check inter 3s fastinter 100ms observe layer7 error-limit 1 on-error fastinter
"""


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2", "s3", "s4", "s5"])
        started.start_hosts(CONFIG, count=2, workers=2)
        yield started


def _send_spaced(fleet: Fleet, paths: list[str]) -> list[str]:
    """Send ``paths`` in order, alternating hosts, 50 ms apart (each host reports what it saw
    within 10 ms, so the fleet counts them in this order); return who answered."""
    served = []
    for i, path in enumerate(paths):
        answer = request(fleet.ports[i % 2], path)
        served.append(answer.header("X-Server") or "")
        time.sleep(0.05)
    return served


def test_three_consecutive_5xx_seen_by_two_hosts_mark_the_server_down_on_every_worker(
    fleet: Fleet,
) -> None:
    lines: list[WorkerLine] = [line for host in fleet.hosts for line in host.worker_lines()]
    try:
        # 501 and 505 are not errors at layer 7
        assert _send_spaced(fleet, ["/status/501", "/status/505", "/status/501"]) == ["s1"] * 3
        assert int(fleet.server("s1").get("observed_errors", 0)) == 0
        # two errors, a success (the run starts again), two errors: not yet the limit
        served = _send_spaced(fleet, ["/status/500"] * 2 + ["/"] + ["/status/503"] * 2)
        assert served == ["s1"] * 5
        assert fleet.oper("s1") == "up"
        assert int(fleet.server("s1")["observed_errors"]) == 4
        # the third error in a row (this run's errors came through both hosts)
        assert _send_spaced(fleet, ["/status/502"]) == ["s1"]
        marked_at = time.monotonic()
        wait_until(lambda: fleet.oper("s1") == "down", 1.0, "s1 marked DOWN by its errors")
        time.sleep(max(marked_at + 1.0 - time.monotonic(), 0))
        for line in lines:
            assert line.served_by(2) == {"s2": 2}, f"worker {line.pid} still uses s1"
        logs = "".join(host.output() for host in fleet.hosts)
        assert logs.count("Server app/s1 is DOWN, reason: Health analyze") == 1
    finally:
        for line in lines:
            line.close()


def test_a_server_marked_down_with_shutdown_sessions_has_its_streaming_responses_cut(
    fleet: Fleet,
) -> None:
    cut, kept = Stream(fleet.ports[0], "cut"), Stream(fleet.ports[1], "kept")
    try:
        cut.start()
        kept.start()
        wait_until(lambda: cut.received > 1_000_000 and kept.received > 1_000_000, 5, "streams")
        fleet.backends["s3"].fail_health()
        fleet.backends["s4"].fail_health()
        failed_at = time.monotonic()
        wait_until(lambda: cut.ended_at is not None, FALL * INTER + 2.5, "the s3 stream is cut")
        assert cut.ended_at is not None and cut.ended_at - failed_at <= FALL * INTER + 2.5
        assert cut.received < Stream.SIZE
        assert fleet.oper("s4", "kept") == "down"
        still = kept.received
        wait_until(lambda: kept.received > still + 1_000_000, 3, "the s4 stream goes on")
        assert kept.ended_at is None, "no shutdown-sessions on s4: its stream is not cut"
        wait_until(lambda: fleet.backends["s3"].stats()["in_flight"] == 0, 2, "s3 freed")
    finally:
        cut.stop.set()
        kept.stop.set()
        for name in ("s3", "s4"):
            fleet.backends[name].pass_health()


def test_on_error_fastinter_brings_the_next_check_forward(fleet: Fleet) -> None:
    s5 = fleet.backends["s5"]
    checks = s5.stats()["health_checks"]
    wait_until(lambda: s5.stats()["health_checks"] > checks, 3.5, "a check of s5 (inter 3s)")
    checked_at = time.monotonic()
    checks = s5.stats()["health_checks"]
    answer = request(fleet.ports[0], "/status/500", headers={"X-Backend": "hasty"})
    assert answer.status == 500
    # the error reaches Redis within 10 ms and the checker within a claim tick (0.5 s)
    wait_until(lambda: s5.stats()["health_checks"] > checks, 1.5, "a check at fastinter")
    assert time.monotonic() - checked_at < 2.0, "not the check due 3 s after the last one"
    assert fleet.oper("s5", "hasty") == "up"
