"""A busy worker's plain requests make no Redis call of their own (leases.py rule 2).

In a gevent worker, a request whose choice needs no check against the fleet (no maxconn, no
stick table) is decided over the fleet's counts plus the worker's own changes not yet sent;
while the worker's plain requests come less than ``BEHIND_GAP`` apart, it is only counted, and
the flusher's next call carries every change of its window. A quieter worker sends each
request's call as before, and decides it over the counts of the moment. Real Redis, counted on
the wire; the clock is the test's, so what is busy is decided by the test, not the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest
import redis

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.config.model import Backend, Location, Server
from geoproxy.state.group_commit import GroupCommit
from geoproxy.state.leases import BEHIND_GAP
from geoproxy.state.redis_store import RedisFleetState
from geoproxy.state.store import Lease
from tests.support.ports import free_port
from tests.support.redis_monitor import wire_commands

HERE = Location("test", 1)
BACKEND = Backend(
    name="app",
    location=HERE,
    servers=tuple(Server(name=n, host="127.0.0.1", port=1, location=HERE) for n in ("s1", "s2")),
)


class Clock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(
    redis_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RedisFleetState]:
    """A fleet state that takes itself for a gevent worker's (its calls still leave one by
    one: the batching itself is group_commit's and has tests of its own)."""
    monkeypatch.setattr(GroupCommit, "in_worker", lambda self: True)
    master = RedisFleetState(redis_url, "master")
    master.register([BACKEND])
    state = RedisFleetState(redis_url, "host-a:1", clock=clock)
    state.attach([BACKEND])
    yield state
    state.close()
    master.close()


def least_loaded(state: RedisFleetState) -> Ranking:
    view = state.view("app")
    servers = tuple(s for s in (view.server("s1"), view.server("s2")) if s is not None)
    return Ranking(PickMode.LEAST_LOADED, servers)


def take(state: RedisFleetState, clock: Clock, gap: float) -> Lease:
    clock.now += gap
    lease = state.acquire("app", least_loaded(state))
    assert lease is not None and lease.shared
    return lease


def redis_counts(redis_url: str, key: str = "gp:{app}:inflight") -> dict[str, int]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        found = cast(dict[str, str], client.hgetall(key))
    finally:
        client.close()
    return {name: int(count) for name, count in found.items() if int(count)}


def warm(state: RedisFleetState, clock: Clock, gap: float, count: int = 80) -> None:
    """``count`` requests ``gap`` apart, each ended at once, every change sent."""
    for _ in range(count):
        state.release(take(state, clock, gap))
    state.flush()


def test_a_busy_workers_plain_requests_wait_for_no_call_and_one_call_counts_them_all(
    worker: RedisFleetState, clock: Clock, redis_url: str
) -> None:
    warm(worker, clock, BEHIND_GAP / 4)
    with wire_commands(redis_url) as sent:
        held = [take(worker, clock, BEHIND_GAP / 4) for _ in range(40)]
    assert sum(sent.values()) == 0, sent
    assert redis_counts(redis_url) == {}, "nothing is counted in Redis before the call"
    # each decision saw the ones before it, though none was sent: leastconn stays even
    assert sorted(lease.server for lease in held).count("s1") == 20

    with wire_commands(redis_url) as sent:
        worker.flush()
    # one transaction (flush() sends the statistics too: one stats.lua call)
    assert sent["MULTI"] == sent["EXEC"] == sent["EVALSHA"] == 1, sent
    assert redis_counts(redis_url) == {"s1": 20, "s2": 20}
    assert redis_counts(redis_url, "gp:{app}:w:host-a:1") == {"s1": 20, "s2": 20}

    for lease in held:
        worker.release(lease)
    worker.flush()
    assert redis_counts(redis_url) == {}
    assert redis_counts(redis_url, "gp:{app}:w:host-a:1") == {}


def test_a_request_and_its_release_in_one_window_cost_redis_nothing(
    worker: RedisFleetState, clock: Clock, redis_url: str
) -> None:
    warm(worker, clock, BEHIND_GAP / 4)
    keep = take(worker, clock, BEHIND_GAP / 4)
    with wire_commands(redis_url) as sent:
        for _ in range(30):
            worker.release(take(worker, clock, BEHIND_GAP / 4))
        worker.flush()
    # thirty requests came and went: the call carries only the one still held (its server's
    # count and the worker's own)
    assert sent["MULTI"] == 1 and sent["HINCRBY"] == 2, sent
    assert redis_counts(redis_url) == {keep.server: 1}
    worker.release(keep)
    worker.flush()


def test_a_quieter_worker_sends_each_request_and_its_call_reads_the_fleets_counts(
    worker: RedisFleetState, clock: Clock, redis_url: str
) -> None:
    warm(worker, clock, BEHIND_GAP * 4)
    other = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        # another worker now holds three requests on s1
        other.hincrby("gp:{app}:inflight", "s1", 3)
        with wire_commands(redis_url) as sent:
            held = [take(worker, clock, BEHIND_GAP * 4) for _ in range(3)]
        assert sent["EXEC"] + sent["EVALSHA"] == 3, sent
        # the first is decided over the counts its worker's previous call read (s1 ties s2,
        # the earlier wins); its call reads the other worker's three, and the next two avoid s1
        assert [lease.server for lease in held] == ["s1", "s2", "s2"]
        assert redis_counts(redis_url) == {"s1": 4, "s2": 2}
        for lease in held:
            worker.release(lease)
        worker.flush()
    finally:
        other.hincrby("gp:{app}:inflight", "s1", -3)
        other.close()


def test_after_a_pause_one_script_call_reads_every_count_of_a_large_backend(
    redis_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts older than ``FRESH`` send a plain request through the script, which lists only
    the 16 least loaded of a larger backend: the first such call lists every server, so that
    the requests after it are decided in the worker again (else every call stays a script)."""
    monkeypatch.setattr(GroupCommit, "in_worker", lambda self: True)
    names = [f"s{i}" for i in range(1, 21)]
    large = Backend(
        name="large",
        location=HERE,
        servers=tuple(Server(name=n, host="127.0.0.1", port=1, location=HERE) for n in names),
    )
    state = RedisFleetState(redis_url, "host-a:1", clock=clock)
    state.register([large])
    try:
        view = state.view("large")
        ranking = Ranking(PickMode.LEAST_LOADED, tuple(view.servers))
        clock.now += 1.0  # the worker's counts are a second old
        with wire_commands(redis_url) as sent:
            for _ in range(5):
                clock.now += BEHIND_GAP * 4
                lease = state.acquire("large", ranking)
                assert lease is not None and lease.shared
                state.release(lease)
        assert sent["EVALSHA"] == 1 and sent["EXEC"] == 4, sent
    finally:
        state.close()


def test_a_failed_call_leaves_nothing_for_the_flusher_to_retry_at_once(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While Redis is away, the changes of a failed call go with the old holder and the wish
    to read the counts is dropped: the flusher finds nothing due (it would otherwise call
    again at once, in a loop, until Redis came back)."""
    monkeypatch.setattr(GroupCommit, "in_worker", lambda self: True)
    state = RedisFleetState(f"redis://127.0.0.1:{free_port()}/0", "host-a:1", clock=clock)
    state.attach([BACKEND])
    try:
        backend = state._backends["app"]
        backend.change_pending("s1", 1, clock.now)
        backend.want_counts(clock.now)
        state.flush()
        assert backend.pending == {} and not backend.counts_wanted
        assert state.degraded
    finally:
        state.close()
