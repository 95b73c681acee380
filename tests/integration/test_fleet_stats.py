"""The statistics the stats page shows, counted off the request path on a real Redis: bytes,
sessions per frontend, maxima, session rates, retries, downtime.

Proves DESIGN.md invariant 1 still holds with statistics: one EVALSHA per request on the
critical path; the statistics leave in a call of their own from the flusher.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.config.model import Backend, Location, Server
from geoproxy.state.redis_store import RedisFleetState
from geoproxy.state.report import read_fleet, session_rate
from geoproxy.state.scripts import SCRIPT_NAMES, script_sha
from geoproxy.state.store import Lease, Ticket
from tests.support.redis_monitor import round_trips, wire_log

HERE = Location("test", 1)
SCRIPT_OF_SHA = {script_sha(name): name for name in SCRIPT_NAMES}


def _server(name: str, **params: object) -> Server:
    return Server(name=name, host="127.0.0.1", port=1, location=HERE, **params)  # type: ignore[arg-type]


BACKEND = Backend(
    name="app",
    location=HERE,
    servers=(_server("s1", rise=1, fall=1, check=True), _server("s2", maxconn=1)),
)


@pytest.fixture
def fleet(redis_url: str) -> Iterator[RedisFleetState]:
    state = RedisFleetState(redis_url, "host-a:1")
    state.register([BACKEND])
    yield state
    state.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def _only(fleet: RedisFleetState, name: str) -> Ranking:
    view = fleet.view("app").server(name)
    assert view is not None
    return Ranking(PickMode.FIRST_WITH_ROOM, (view,))


def _take(fleet: RedisFleetState, name: str) -> Lease:
    lease = fleet.acquire("app", _only(fleet, name))
    assert lease is not None and lease.server == name
    return lease


def _script_label(command: str) -> str:
    words = command.replace('"', "").split()
    if words[0].upper() == "EVALSHA":
        return "EVALSHA " + SCRIPT_OF_SHA.get(words[1], words[1])
    return words[0].upper()


def test_bytes_and_sessions_reach_the_server_hash_and_the_frontend_figures(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    for size in (100, 200, 300):
        lease = _take(fleet, "s1")
        fleet.count_traffic(lease, "web", size, 10 * size)
        fleet.release(lease)
    lease = _take(fleet, "s1")
    fleet.count_traffic(lease, "api", 7, 70)
    fleet.release(lease)
    fleet.flush()
    s1 = client.hgetall("gp:{app}:stat:s1")
    assert (s1["bytes_in"], s1["bytes_out"]) == ("607", "6070")
    report = read_fleet(client)
    fronts = {front.name: front for front in report.frontends}
    assert (fronts["web"].sessions, fronts["web"].bytes_in, fronts["web"].bytes_out) == (
        3,
        600,
        6000,
    )
    assert (fronts["api"].sessions, fronts["api"].bytes_out) == (1, 70)
    row = report.backends[0].servers[0]
    assert (row.total, row.bytes_in, row.bytes_out, row.rate_max) == (4, 607, 6070, 4)
    assert report.workers == ("host-a:1",) and report.hosts == ("host-a",)


def test_max_inflight_is_the_highest_count_any_acquire_saw(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    held = [_take(fleet, "s1") for _ in range(3)] + [_take(fleet, "s2")]
    for lease in held:
        fleet.release(lease)
    _take(fleet, "s1")
    fleet.flush()
    report = read_fleet(client).backends[0]
    s1, s2 = report.servers
    assert (s1.max_inflight, s2.max_inflight, report.max_inflight) == (3, 1, 4)
    assert (s1.inflight, s1.total) == (1, 4)


def test_max_queued_is_the_longest_queue_a_ticket_joined(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    _take(fleet, "s2")  # s2 has maxconn 1: full
    for number in range(3):
        rank = fleet.queue_acquire("app", _only(fleet, "s2"), Ticket(f"t{number}", 5000, "s2"))
        assert rank == number
    fleet.flush()
    s2 = read_fleet(client).backends[0].servers[1]
    assert (s2.queued, s2.max_queued) == (3, 3)


def test_retries_and_redispatches_are_counted_per_server(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    fleet.count_retry("app", "s1", redispatch=False)
    fleet.count_retry("app", "s1", redispatch=False)
    fleet.count_retry("app", "s1", redispatch=True)
    fleet.flush()
    s1 = read_fleet(client).backends[0].servers[0]
    assert (s1.retries, s1.redispatches) == (2, 1)


def test_downtime_adds_up_the_time_a_server_spent_down(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    health = fleet.health
    assert health.claim_checks("app", ["s1"], "checker") == {"s1"}
    outcome = health.record_check("app", BACKEND.servers[0], "checker", (False, "L4CON", "", 1))
    assert outcome is not None and outcome.after == "down"
    time.sleep(0.3)
    down = read_fleet(client).backends[0].servers[0]
    assert down.downtime >= 0.3 and down.downs == 1
    health.record_check("app", BACKEND.servers[0], "checker", (True, "L7OK", "", 1))
    time.sleep(0.2)
    up = read_fleet(client).backends[0].servers[0]
    assert 0.3 <= up.downtime < 0.5, "time UP after the return is not downtime"
    assert int(client.hget("gp:{app}:srv:s1", "downtime_ms") or 0) >= 300


def test_statistics_of_a_server_removed_meanwhile_do_not_bring_it_back(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    lease = _take(fleet, "s2")
    fleet.count_traffic(lease, "web", 1, 1)
    fleet.release(lease)
    fleet.register([Backend(name="app", location=HERE, servers=(BACKEND.servers[0],))])
    fleet.flush()
    assert not client.exists("gp:{app}:srv:s2")
    assert [row.name for row in read_fleet(client).backends[0].servers] == ["s1"]


def test_statistics_add_no_command_on_the_critical_path(
    fleet: RedisFleetState, redis_url: str
) -> None:
    with wire_log(redis_url) as recorded:
        for _ in range(20):
            lease = _take(fleet, "s1")
            fleet.count_traffic(lease, "web", 100, 1000)
            fleet.release(lease)
            fleet.flush()  # the worst case: the flusher runs between every two requests
    trips = round_trips(recorded, SCRIPT_OF_SHA)
    # per request: its acquire (a transaction, or the acquire script when the worker's counts
    # are old), then the flush: its release (a transaction) and the statistics (the stats
    # script)
    assert trips["stats"] == 20, trips
    assert sum(trips[kind] for kind in ("transaction", "acquire")) == 40, trips
    assert sum(trips.values()) == 60, trips


def test_the_session_rate_reads_a_frequency_counter_as_haproxy_does() -> None:
    fields = {"rate_sec": "100", "rate_cur": "8", "rate_prev": "10"}
    assert session_rate(fields, "", 100_000) == 8 + 10
    assert session_rate(fields, "", 100_250) == 8 + 7
    assert session_rate(fields, "", 101_500) == 4, "last second's count, half covered"
    assert session_rate(fields, "", 102_000) == 0
