"""Run-time resolution against a real Redis: init-addr at registration, one resolver per FQDN
group fleet-wide (the lease), addresses written into the server hashes and routed to from every
worker's snapshot, MAINT while a server has none, and a takeover when a resolver stops.
The name lookups are scripted (``Answers``); tests/e2e/test_resolvers.py resolves through the
system's resolver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from geoproxy.balance.view import AdminState
from geoproxy.config import parse_text
from geoproxy.config.model import Config, ServerResolution
from geoproxy.resolve.lookup import Answer
from geoproxy.resolve.resolver import Resolver
from geoproxy.resolve.startup import seed_addresses
from geoproxy.state.redis_store import RedisFleetState

CONFIG = """
resolvers dns
    hold valid 10s
    hold nx 5s
defaults
    mode http
frontend f
    bind :80
    default_backend b
backend b
    server-template w 3 app.test:8080 resolvers dns init-addr {init}
    server fixed 127.0.0.1:9000
"""


class Answers:
    """A scripted resolver: ``addresses`` now, or a failure."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.failure: str | None = None
        self.asked = 0

    def __call__(self, fqdn: str, resolution: ServerResolution) -> Answer:
        self.asked += 1
        if self.failure:
            return Answer(failure=self.failure)
        return Answer(self.addresses)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def config(init: str = "none") -> Config:
    return parse_text(CONFIG.format(init=init), "t.cfg", env={})


@pytest.fixture
def fleet(redis_url: str) -> Iterator[RedisFleetState]:
    state = RedisFleetState(redis_url, "host-a:1")
    yield state
    state.close()


def resolved(redis_url: str) -> list[str | None]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [client.hget(f"gp:{{b}}:srv:{name}", "resolved")  # type: ignore[misc]
                for name in ("w1", "w2", "w3", "fixed")]
    finally:
        client.close()


def test_init_addr_libc_gives_the_slots_distinct_addresses_at_registration(
    fleet: RedisFleetState, redis_url: str
) -> None:
    cfg = config("last,libc,none")
    fleet.register(cfg.backends)
    seed_addresses(fleet.dns, cfg, Answers("10.0.0.1", "10.0.0.2"))
    assert resolved(redis_url) == ["10.0.0.1", "10.0.0.2", "", None]


def test_init_addr_last_keeps_what_the_fleet_resolved_before_a_restart(
    fleet: RedisFleetState, redis_url: str
) -> None:
    cfg = config("last,libc")
    fleet.register(cfg.backends)
    seed_addresses(fleet.dns, cfg, Answers("10.0.0.1"))
    seed_addresses(fleet.dns, cfg, Answers("10.9.9.9"))
    assert resolved(redis_url) == ["10.0.0.1", "", "", None]


def test_an_unresolvable_name_without_none_starts_in_maint(
    fleet: RedisFleetState, redis_url: str
) -> None:
    cfg = config("libc")
    fleet.register(cfg.backends)
    failing = Answers()
    failing.failure = "nx"
    seed_addresses(fleet.dns, cfg, failing)
    assert resolved(redis_url)[:3] == ["", "", ""]


def test_the_snapshot_routes_to_resolved_addresses_and_holds_empty_slots_in_maint(
    fleet: RedisFleetState, redis_url: str
) -> None:
    cfg = config()
    fleet.register(cfg.backends)
    answers, clock = Answers("10.0.0.1", "10.0.0.2"), Clock()
    resolver = Resolver(fleet.dns, cfg, "host-a:1", resolve=answers, wall=clock)
    resolver.tick()
    fleet.attach(cfg.backends)
    view = fleet.view("b")
    assert [(s.name, s.address, s.admin) for s in view.servers] == [
        ("w1", "10.0.0.1", AdminState.READY), ("w2", "10.0.0.2", AdminState.READY),
        ("w3", "", AdminState.MAINT), ("fixed", None, AdminState.READY)]


def test_one_resolver_per_group_fleet_wide_and_the_next_answer_comes_after_hold_valid(
    fleet: RedisFleetState, redis_url: str
) -> None:
    cfg = config()
    fleet.register(cfg.backends)
    clock = Clock()
    first, second = Answers("10.0.0.1"), Answers("10.0.0.7")
    a = Resolver(fleet.dns, cfg, "host-a:1", resolve=first, wall=clock)
    b = Resolver(fleet.dns, cfg, "host-b:1", resolve=second, wall=clock)
    a.tick()
    b.tick()
    assert (first.asked, second.asked) == (1, 0)
    clock.now += 5
    a.tick()
    assert first.asked == 1  # hold valid (10 s) not over
    first.addresses = ("10.0.0.1", "10.0.0.3")
    clock.now += 6
    a.tick()
    assert first.asked == 2
    assert resolved(redis_url)[:3] == ["10.0.0.1", "10.0.0.3", ""]
    a.stop()  # hands its lease back (a 1 ms TTL): the other process takes over at its claim
    time.sleep(0.01)
    b.tick()
    assert second.asked == 1
    assert resolved(redis_url)[:3] == ["10.0.0.7", "", ""]


def test_a_failing_name_keeps_its_addresses_for_hold_nx_then_goes_to_maint(
    fleet: RedisFleetState, redis_url: str
) -> None:
    cfg = config()
    fleet.register(cfg.backends)
    answers, clock = Answers("10.0.0.1"), Clock()
    resolver = Resolver(fleet.dns, cfg, "host-a:1", resolve=answers, wall=clock)
    resolver.tick()
    answers.failure = "nx"
    clock.now += 11
    resolver.tick()  # 11 s after the valid answer: more than hold nx (5 s)
    assert resolved(redis_url)[:3] == ["", "", ""]
    answers.failure = None
    clock.now += 1  # a failure is retried after timeout retry (1 s)
    resolver.tick()
    assert resolved(redis_url)[:3] == ["10.0.0.1", "", ""]
