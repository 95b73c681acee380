"""acquire.lua's leastconn index (lua/lib/least_index.lua) against its Python twin.

The twin is ``rank.decide`` over the pool's members in the order of their last move: the index
takes the lowest (inflight + 1) / weight with room, and among equal loads the member whose count
moved longest ago, which is ``decide``'s "ties to the earlier candidate" over that order
(HAProxy's leastconn tree puts a server behind its equals each time it takes or drops a
connection). Every sequence of picks and releases, in any batching, must take the servers the
twin takes; and a fresher snapshot's pool replaces an older one, never the reverse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.rank import decide
from geoproxy.balance.view import ServerView
from geoproxy.state.scripts import Scripts
from tests.support.acquire_script import HOLDER, Call, FromPool, Listed, call, keys_of

KEYS = keys_of("lc")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    yield connection
    connection.close()


@dataclass
class Twin:
    """The index in Python: counts, and the members in the order of their last move."""

    table: list[tuple[str, int, int]]
    counts: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.order = [name for name, _, _ in self.table]

    def pick(self) -> str | None:
        spec = {name: (weight, maxconn) for name, weight, maxconn in self.table}
        views = tuple(
            ServerView(name, i, spec[name][0], inflight=self.counts.get(name, 0),
                       maxconn=spec[name][1])
            for i, name in enumerate(self.order)
        )
        chosen = decide(Ranking(PickMode.LEAST_LOADED, views))
        if chosen is not None:
            self.moved(chosen.name, +1)
        return chosen.name if chosen else None

    def moved(self, name: str, by: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + by
        self.order.remove(name)
        self.order.append(name)


def pool(table: list[tuple[str, int, int]], version: int = 1, digest: str = "d1") -> Call:
    return Call(pool=(digest, version, table))


def test_equal_servers_take_turns_and_a_busy_one_is_skipped(client: redis.Redis) -> None:
    table = [("a", 1, 0), ("b", 1, 0), ("c", 1, 0)]
    first = call(client, "lc", Call(requests=[FromPool()] * 4, pool=("d1", 1, table)))
    assert first[0] == 0
    assert [r[0] for r in first[1:]] == ["a", "b", "c", "a"]
    # b's request ends: b is now the least loaded, alone
    second = call(
        client, "lc", Call(requests=[FromPool()], releases={"b": 1}, pool=("d1", 1, None))
    )
    assert second[1][0] == "b"
    assert client.hgetall(KEYS.inflight) == {"a": "2", "b": "1", "c": "1"}


def test_weights_share_the_load_by_inflight_over_weight(client: redis.Redis) -> None:
    table = [("heavy", 3, 0), ("light", 1, 0)]
    reply = call(client, "lc", Call(requests=[FromPool()] * 8, pool=("d1", 1, table)))
    taken = [r[0] for r in reply[1:]]
    assert taken.count("heavy") == 6 and taken.count("light") == 2


def test_a_full_server_is_skipped_and_a_full_pool_takes_nobody(client: redis.Redis) -> None:
    table = [("a", 1, 1), ("b", 1, 2)]
    reply = call(client, "lc", Call(requests=[FromPool()] * 4, pool=("d1", 1, table)))
    assert [r[0] for r in reply[1:]] == ["a", "b", "b", None]


def test_no_pool_in_redis_asks_for_the_table(client: redis.Redis) -> None:
    reply = call(client, "lc", Call(requests=[FromPool(), Listed("first", [("a", 1, 0)])],
                                    pool=("d1", 1, None)))
    assert reply[0] == 2
    assert reply[1] == (None, 0, 0, 1), "resend with the pool's table"
    assert reply[2][0] == "a", "a listed request is decided all the same"


def test_a_fresher_pool_wins_and_an_older_one_never_replaces_it(client: redis.Redis) -> None:
    call(client, "lc", pool([("a", 1, 0), ("b", 1, 0)], version=100, digest="old"))
    # a worker with a fresher snapshot: b went down
    fresh = call(client, "lc", Call(requests=[FromPool()] * 2, pool=("new", 200, [("a", 1, 0)])))
    assert fresh[0] == 0 and [r[0] for r in fresh[1:]] == ["a", "a"]
    # a worker still on the older snapshot sends its table: Redis keeps the fresher pool
    stale = call(
        client,
        "lc",
        Call(requests=[FromPool()], pool=("old", 100, [("a", 1, 0), ("b", 1, 0)])),
    )
    assert stale[0] == 1, "decided over the newer pool"
    assert stale[1][0] == "a"
    assert client.hget(KEYS.pool, "#digest") == "new"


def test_the_index_follows_reaped_counts(client: redis.Redis) -> None:
    table = [("a", 1, 0), ("b", 1, 0)]
    call(client, "lc", Call(requests=[FromPool()] * 3, pool=("d1", 1, table)))  # a b a
    client.hset(KEYS.worker(HOLDER), mapping={"a": 2, "b": 1})
    Scripts().call(
        client,
        "heartbeat",
        [KEYS.workers, KEYS.inflight, KEYS.least, KEYS.pool],
        [KEYS.worker_prefix, "", 1500, HOLDER],
    )
    assert client.hgetall(KEYS.inflight) == {"a": "0", "b": "0"}
    reply = call(client, "lc", Call(requests=[FromPool()] * 2, pool=("d1", 1, None)))
    # both idle again, moved by the reaper in the order of the worker's hash: a, then b
    assert [r[0] for r in reply[1:]] == ["a", "b"]


def test_the_sequence_wraps_without_changing_the_order(client: redis.Redis) -> None:
    table = [("a", 1, 0), ("b", 1, 0), ("c", 1, 0)]
    twin = Twin(table)
    call(client, "lc", Call(pool=("d1", 1, table)))
    client.hset(KEYS.pool, "#seq", 2**20 - 3)
    requests = 8
    reply = call(client, "lc", Call(requests=[FromPool()] * requests, pool=("d1", 1, None)))
    assert [r[0] for r in reply[1:]] == [twin.pick() for _ in range(requests)]
    assert int(client.hget(KEYS.pool, "#seq") or 0) < 2**20


tables = st.lists(
    st.tuples(st.integers(1, 256), st.integers(0, 4)), min_size=1, max_size=6
).map(lambda specs: [(f"s{i}", w, m) for i, (w, m) in enumerate(specs)])
steps = st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3)), min_size=1, max_size=12)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(table=tables, batches=steps)
def test_any_batches_of_picks_and_releases_take_what_the_twin_takes(
    client: redis.Redis, table: list[tuple[str, int, int]], batches: list[tuple[int, int]]
) -> None:
    client.flushdb()
    twin = Twin(table)
    held: list[str] = []
    call(client, "lc", Call(pool=("d", 1, table)))
    for picks, releases in batches:
        given: dict[str, int] = {}
        for name in held[:releases]:
            given[name] = given.get(name, 0) + 1
        for name, count in given.items():  # a batch gives back each server's releases at once
            twin.moved(name, -count)
        del held[:releases]
        expected = [twin.pick() for _ in range(picks)]
        reply = call(client, "lc", Call(requests=[FromPool()] * picks, releases=given,
                                        pool=("d", 1, None)))
        assert [r[0] for r in reply[1:]] == expected
        held += [name for name in expected if name is not None]
    inflight = {k: int(v) for k, v in client.hgetall(KEYS.inflight).items() if int(v)}
    assert inflight == {k: v for k, v in twin.counts.items() if v}
