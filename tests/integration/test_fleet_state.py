"""Fleet state on a real Redis: acquire and release, batching, reaping, degraded mode.

Proves DESIGN.md invariants 1 (one round trip per acquire), 2 (a dead worker leaks nothing) and
4 (no Redis: local decisions, no failure).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import cast

import pytest
import redis

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.rank import eligible
from geoproxy.config.model import Backend, Location, Server
from geoproxy.state.heartbeat import HEARTBEAT_PERIOD, WORKER_TTL_MS
from geoproxy.state.redis_store import RedisFleetState
from tests.support.redis_monitor import wire_commands

HERE = Location("test", 1)


def make_backend(*servers: Server, name: str = "app") -> Backend:
    return Backend(name=name, location=HERE, servers=servers)


def server(name: str, port: int = 1, **params: object) -> Server:
    return Server(name=name, host="127.0.0.1", port=port, location=HERE, **params)  # type: ignore[arg-type]


BACKEND = make_backend(server("s1"), server("s2", weight=2), server("s3", maxconn=1))


@pytest.fixture
def fleet(redis_url: str) -> Iterator[RedisFleetState]:
    state = RedisFleetState(redis_url, "host-a:1")
    state.register([BACKEND])
    yield state
    state.close()


def counts(redis_url: str, key: str = "gp:{app}:inflight") -> dict[str, int]:
    """A hash of counts; a worker's hash keeps a server at 0 once its requests ended, which
    means what an absent field means."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        found = cast(dict[str, str], client.hgetall(key))
        counted = {name: int(value) for name, value in found.items()}
        if ":w:" in key:
            counted = {name: count for name, count in counted.items() if count}
        return counted
    finally:
        client.close()


def ranking(fleet: RedisFleetState, mode: PickMode, *names: str) -> Ranking:
    view = fleet.view("app")
    return Ranking(mode, tuple(view.server(n) for n in names))  # type: ignore[misc]


def test_register_writes_each_server_with_its_configuration_and_state(
    fleet: RedisFleetState, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.smembers("gp:backends") == {"app"}
    assert client.zrange("gp:{app}:servers", 0, -1) == ["s1", "s2", "s3"]
    s2 = client.hgetall("gp:{app}:srv:s2")
    assert s2["addr"] == "127.0.0.1:1"
    assert s2["weight"] == "2"
    assert s2["admin"] == "ready"
    assert s2["oper"] == "up"
    client.close()


def test_acquire_counts_the_request_in_flight_and_release_gives_it_back(
    fleet: RedisFleetState, redis_url: str
) -> None:
    lease = fleet.acquire("app", ranking(fleet, PickMode.FIRST_WITH_ROOM, "s2", "s1"))
    assert lease is not None and lease.server == "s2" and lease.shared
    assert counts(redis_url) == {"s2": 1}
    assert counts(redis_url, "gp:{app}:w:host-a:1") == {"s2": 1}
    assert counts(redis_url, "gp:{app}:total") == {}, "totals travel with the statistics"
    fleet.release(lease)
    assert counts(redis_url) == {"s2": 1}, "a release waits to be batched"
    fleet.flush()
    assert counts(redis_url) == {"s2": 0}
    assert counts(redis_url, "gp:{app}:w:host-a:1") == {}
    assert counts(redis_url, "gp:{app}:total") == {"s2": 1}


def test_a_pending_release_rides_on_the_next_acquire(
    fleet: RedisFleetState, redis_url: str
) -> None:
    first = fleet.acquire("app", ranking(fleet, PickMode.FIRST_WITH_ROOM, "s1"))
    assert first is not None
    fleet.release(first)
    second = fleet.acquire("app", ranking(fleet, PickMode.FIRST_WITH_ROOM, "s2"))
    assert second is not None
    assert counts(redis_url) == {"s1": 0, "s2": 1}


def test_least_loaded_takes_the_lowest_load_per_weight(fleet: RedisFleetState) -> None:
    rank = ranking(fleet, PickMode.LEAST_LOADED, "s1", "s2")
    picks = [fleet.acquire("app", rank) for _ in range(3)]
    # s1 (w1) and s2 (w2) tie at 1/1 vs 1/2 -> s2; then 1/1 vs 2/2 -> s1 (earlier); then 2/1 vs 2/2
    assert [lease.server for lease in picks if lease] == ["s2", "s1", "s2"]


def test_maxconn_full_server_is_skipped_and_none_when_all_are_full(fleet: RedisFleetState) -> None:
    only_s3 = ranking(fleet, PickMode.FIRST_WITH_ROOM, "s3")
    assert fleet.acquire("app", only_s3) is not None
    assert fleet.acquire("app", only_s3) is None
    lease = fleet.acquire("app", ranking(fleet, PickMode.FIRST_WITH_ROOM, "s3", "s1"))
    assert lease is not None and lease.server == "s1"


def test_acquire_costs_one_round_trip_and_releases_ride_along(
    fleet: RedisFleetState, redis_url: str
) -> None:
    """The first acquire is a script (this process has read no count yet) whose answer is
    every count of its ranking; the next ones are decided here, each one MULTI/EXEC that also
    carries the previous release (the two cancel out: no increment at all) and reads the counts
    back."""
    with wire_commands(redis_url) as sent:
        for _ in range(20):
            lease = fleet.acquire("app", ranking(fleet, PickMode.LEAST_LOADED, "s1", "s2"))
            assert lease is not None
            fleet.release(lease)
    assert sent == {"EVALSHA": 1, "MULTI": 19, "HGETALL": 19, "EXEC": 19}
    assert sum(counts(redis_url).values()) == 1, "the last release is still pending"


REAP_CHILD = """
import sys, time
from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.config.model import Backend, Location, Server
from geoproxy.state.redis_store import RedisFleetState
here = Location("child", 1)
backend = Backend(name="app", location=here,
                  servers=(Server(name="s1", host="127.0.0.1", port=1, location=here),))
fleet = RedisFleetState(sys.argv[1], sys.argv[2])
fleet.attach([backend])
view = fleet.view("app")
for _ in range(3):
    assert fleet.acquire("app", Ranking(PickMode.FIRST_WITH_ROOM, view.servers)) is not None
print("held", flush=True)
time.sleep(60)
"""


def _kill_holder(redis_url: str, worker: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", REAP_CHILD, redis_url, worker],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "held"
            assert counts(redis_url)["s1"] == 3
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)


def test_a_worker_killed_with_sigkill_is_reaped_by_a_live_process_heartbeat(
    fleet: RedisFleetState, redis_url: str
) -> None:
    _kill_holder(redis_url, "host-b:99")
    deadline = time.monotonic() + WORKER_TTL_MS / 1000 + 3 * HEARTBEAT_PERIOD
    while time.monotonic() < deadline and counts(redis_url).get("s1"):
        fleet.refresh()
        time.sleep(HEARTBEAT_PERIOD)
    assert counts(redis_url)["s1"] == 0
    assert counts(redis_url, "gp:{app}:w:host-b:99") == {}


def test_the_master_reaps_an_exited_worker_at_once(fleet: RedisFleetState, redis_url: str) -> None:
    _kill_holder(redis_url, "host-a:77")
    assert fleet.reap(["host-a:77"]) == 1
    assert counts(redis_url)["s1"] == 0


def test_a_slow_worker_wrongly_reaped_gives_back_nothing_twice(
    fleet: RedisFleetState, redis_url: str
) -> None:
    lease = fleet.acquire("app", ranking(fleet, PickMode.FIRST_WITH_ROOM, "s1"))
    assert lease is not None
    assert fleet.reap(["host-a:1"]) == 1
    fleet.release(lease)
    fleet.flush()
    assert counts(redis_url)["s1"] == 0


def test_without_redis_acquire_decides_locally_and_never_fails() -> None:
    state = RedisFleetState("redis://127.0.0.1:1/0", "host-c:1")
    state.attach([BACKEND])
    assert state.degraded
    view = state.view("app")
    rank = Ranking(PickMode.LEAST_LOADED, eligible(view, allbackups=False)[:2])
    picks = [state.acquire("app", rank) for _ in range(3)]
    assert all(lease is not None and not lease.shared for lease in picks)
    assert [lease.server for lease in picks if lease] == ["s2", "s1", "s2"]
    for lease in picks:
        assert lease is not None
        state.release(lease)
    state.close()


def test_a_redis_that_comes_back_empty_gets_the_fleet_state_again(
    fleet: RedisFleetState, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset("gp:{app}:srv:s2", "admin", "drain")
    fleet.refresh()
    assert fleet.view("app").server("s2").admin.value == "drain"  # type: ignore[union-attr]
    client.flushall()
    fleet.refresh()  # sees the backend gone and registers it again
    assert client.smembers("gp:backends") == {"app"}
    assert client.zrange("gp:{app}:servers", 0, -1) == ["s1", "s2", "s3"]
    assert client.hget("gp:{app}:srv:s2", "admin") == "drain", "the last known state, kept"
    lease = fleet.acquire("app", ranking(fleet, PickMode.FIRST_WITH_ROOM, "s1"))
    assert lease is not None and lease.shared
    client.close()
