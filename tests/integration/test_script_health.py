"""record_check.lua and observe.lua against their Python twin (geoproxy.health.verdict), and
the checker lease: one holder at a time, taken over when it expires, guarded on record."""

from __future__ import annotations

import time

import pytest
import redis

from geoproxy.config.model import Location, OnError, Server
from geoproxy.health.verdict import Health, after_check, after_error_limit
from geoproxy.state.health_store import HealthStore
from geoproxy.state.scripts import Scripts

SERVER = Server(name="s1", host="127.0.0.1", port=1, location=Location("t", 1), rise=2, fall=3)
HASH, LEASE, STATS = "gp:{app}:srv:s1", "gp:{app}:chk:s1", "gp:{app}:stat:s1"


@pytest.fixture
def store(redis_url: str) -> HealthStore:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.zadd("gp:{app}:servers", {"s1": 0})
    return HealthStore(client, Scripts())


SEQUENCES = ["---", "--+", "---++", "---+-++", "+-+--+++", "-" * 6 + "+" * 3]


@pytest.mark.parametrize("results", SEQUENCES)
def test_record_check_moves_health_as_its_python_twin(store: HealthStore, results: str) -> None:
    assert store.claim_checks("app", ["s1"], "me") == {"s1"}
    twin = Health(4, 2, 3)
    for result in results:
        passed = result == "+"
        outcome = store.record_check("app", SERVER, "me", (passed, "L4OK", "x", 1))
        twin = after_check(twin, passed)
        assert outcome is not None and outcome.after == twin.state.value
        state = store.server_state("app", "s1")
        assert int(state["health"]) == twin.value
        assert state["oper"] == twin.state.value


def test_a_check_without_the_lease_changes_nothing(store: HealthStore) -> None:
    assert store.claim_checks("app", ["s1"], "other") == {"s1"}
    assert store.claim_checks("app", ["s1"], "me") == set()
    assert store.record_check("app", SERVER, "me", (False, "L4CON", "x", 1)) is None
    assert "health" not in store.server_state("app", "s1")


def test_a_lease_is_taken_over_once_its_holder_stops_renewing(store: HealthStore) -> None:
    assert store.claim_checks("app", ["s1"], "holder", ttl_ms=200) == {"s1"}
    assert store.claim_checks("app", ["s1"], "other") == set()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not store.claim_checks("app", ["s1"], "other"):
        time.sleep(0.05)
    assert store.claim_checks("app", ["s1"], "other") == {"s1"}


def test_giving_a_lease_up_lets_another_take_it_at_once(store: HealthStore) -> None:
    assert store.claim_checks("app", ["s1"], "holder") == {"s1"}
    store.give_up_checks("app", ["s1"], "holder")
    time.sleep(0.01)
    assert store.claim_checks("app", ["s1"], "other") == {"s1"}


@pytest.mark.parametrize("action", list(OnError))
def test_observe_applies_on_error_at_the_error_limit(
    store: HealthStore, redis_url: str, action: OnError
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    scripts = Scripts()
    args = [action.value, 2, 3]
    # 4 errors, then a success ends the run, then 3 more: limit 5 is not reached
    scripts.call(client, "observe", [HASH, STATS], [4, 0, 4, 5, *args])
    scripts.call(client, "observe", [HASH, STATS], [3, 1, 3, 5, *args])
    assert client.hget(HASH, "oper") == "up"
    assert client.hget(STATS, "consecutive_errors") == "3"
    reply = scripts.call(client, "observe", [HASH, STATS], [2, 0, 2, 5, *args])
    twin = after_error_limit(Health(4, 2, 3), action)
    assert reply == ["up", twin.state.value]
    assert int(client.hget(HASH, "health") or -1) == twin.value
    assert client.hget(STATS, "consecutive_errors") == "0"
    assert client.hget(STATS, "observed_errors") == "9"
    client.close()
