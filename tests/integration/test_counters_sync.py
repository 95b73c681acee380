"""Fleet-wide stick counters on a real Redis: two workers' views (``CounterTables``) kept in
step by their ``CounterSync`` (plain commands, one MULTI/EXEC per table and sync). Their
counts and rates add up, gauges sum and a dead worker's share ages out, entries expire and
the table keeps to its size, reads never create.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis

from geoproxy.config import parse_text
from geoproxy.counters import exchange
from geoproxy.counters.entry import Entry
from geoproxy.counters.registry import CounterTables
from geoproxy.state import counters as counters_module
from geoproxy.state.connect import connect
from geoproxy.state.counters import CounterSync
from geoproxy.state.fastpath import fast_caller
from geoproxy.state.keys import counter_index, counter_key
from geoproxy.state.outage import Outage
from tests.support.redis_monitor import wire_log

CONFIG = """defaults
    mode http
    timeout client 5s
    timeout server 5s
    timeout connect 5s
frontend f
    bind :80
    stick-table type string len 16 size {size} expire {expire} {nopurge} store {store}
    default_backend b
backend b
    server s 127.0.0.1:1
"""
STORE = "http_req_rate(10s),http_req_cnt,conn_cur,gpc0,gpt0"


class Worker:
    """One worker's counters and its sync."""

    def __init__(self, redis_url: str, name: str, **table: str) -> None:
        settings = {"size": "100", "expire": "30s", "nopurge": "", "store": STORE, **table}
        config = parse_text(CONFIG.format(**settings), "t.cfg", env={})
        self.tables = CounterTables.of(config)
        self.table = self.tables.tables["f"]
        self._client = connect(redis_url, 0.5)
        self._fast = fast_caller(redis_url, 0.5)
        self.sync = CounterSync(self._client, self._fast, self.tables, name,
                                Outage(name, logging.getLogger("test")))

    def value(self, key: str, name: str) -> int | None:
        return self.table.value(self.table.entry(key), name)

    def track(self, key: str) -> Entry:
        entry = self.table.track(key)
        assert entry is not None
        return entry

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._client.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def workers(redis_url: str) -> Iterator[tuple[Worker, Worker]]:
    a, b = Worker(redis_url, "host-a:1"), Worker(redis_url, "host-b:2")
    yield a, b
    a.close()
    b.close()


def test_two_workers_counts_add_up_in_redis_and_in_each_view(
        workers: tuple[Worker, Worker], client: redis.Redis) -> None:
    a, b = workers
    for _ in range(5):
        a.table.untrack(a.track("alice"), 10, 20)
    for _ in range(3):
        b.table.untrack(b.track("alice"), 10, 20)
    a.sync.sync()
    b.sync.sync()
    assert client.hget(counter_key("f", "alice"), "http_req_cnt") == "8"
    assert b.value("alice", "http_req_cnt") == 8 and b.value("alice", "http_req_rate") == 8
    assert a.value("alice", "http_req_cnt") == 5  # a has not heard of b's yet
    a.track("alice")
    a.sync.sync()
    assert a.value("alice", "http_req_cnt") == 9 and a.value("alice", "http_req_rate") == 9


def test_one_sync_is_one_transaction_whatever_the_number_of_entries(
        workers: tuple[Worker, Worker], redis_url: str) -> None:
    a, _ = workers
    for index in range(50):
        a.track(f"client{index}")
    with wire_log(redis_url) as log:
        a.sync.sync()
    names = [command[0] for command in log]
    assert names[0] == "MULTI" and names[-1] == "EXEC"
    assert names.count("MULTI") == 1 and "EVALSHA" not in names


def test_conn_cur_sums_the_workers_and_a_dead_workers_share_ages_out(
        workers: tuple[Worker, Worker], redis_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the production times (a share refreshed every 1 s, stale after 3 s), scaled down
    monkeypatch.setattr(exchange, "USE_STALE_MS", 300)
    monkeypatch.setattr(exchange, "USE_REFRESH_MS", 100)
    a, b = Worker(redis_url, "host-a:9"), Worker(redis_url, "host-b:9")
    try:
        held = [a.track("bob"), a.track("bob")]
        b.track("bob")
        a.sync.sync()
        b.sync.sync()
        assert b.value("bob", "conn_cur") == 3
        for entry in held:
            a.table.untrack(entry, 0, 0)
        a.sync.sync()
        b.table.count(b.table.entry("bob"), "http_req")  # anything that makes b sync it
        b.sync.sync()
        assert b.value("bob", "conn_cur") == 1
        a.track("bob")
        a.sync.sync()  # a publishes 1, then dies (never refreshes it)
        b.table.count(b.table.entry("bob"), "http_req")
        b.sync.sync()
        assert b.value("bob", "conn_cur") == 2
        time.sleep(0.4)
        b.table.count(b.table.entry("bob"), "http_req")
        b.sync.sync()
        assert b.value("bob", "conn_cur") == 1
    finally:
        a.close()
        b.close()


def test_entries_expire_after_the_tables_expire(redis_url: str, client: redis.Redis,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counters_module, "HOUSEKEEPING", 1)  # prune at every call
    worker = Worker(redis_url, "host-a:1", expire="300ms")
    try:
        worker.track("carol")
        worker.sync.sync()
        assert 0 < client.pttl(counter_key("f", "carol")) <= 300
        assert client.zcard(counter_index("f")) == 1
        time.sleep(0.35)
        worker.track("dave")
        worker.sync.sync()
        assert not client.exists(counter_key("f", "carol"))
        assert client.zrange(counter_index("f"), 0, -1) == ["dave"]
        assert worker.table.used() == 1
    finally:
        worker.close()


def test_a_full_table_evicts_its_least_recently_written_entries(
        redis_url: str, client: redis.Redis) -> None:
    worker = Worker(redis_url, "host-a:1", size="3")
    try:
        for key in ("k1", "k2", "k3"):
            worker.track(key)
        worker.sync.sync()
        time.sleep(0.01)
        worker.track("k1")  # used again: the newest now
        worker.track("k4")
        worker.sync.sync()
        assert sorted(client.zrange(counter_index("f"), 0, -1)) == ["k1", "k3", "k4"]
        assert worker.table.used() == 3
        worker.track("k4")
        worker.sync.sync()  # the evicted entry's hash goes with the worker's next call
        assert not client.exists(counter_key("f", "k2"))
    finally:
        worker.close()


def test_nopurge_refuses_new_entries_when_full(redis_url: str, client: redis.Redis) -> None:
    worker = Worker(redis_url, "host-a:1", size="2", nopurge="nopurge")
    try:
        worker.track("k1")
        worker.track("k2")
        worker.sync.sync()
        assert worker.table.track("k3") is None
        worker.track("k1")
        worker.sync.sync()
        assert not client.exists(counter_key("f", "k3"))
        assert client.zcard(counter_index("f")) == 2 and worker.table.used() == 2
    finally:
        worker.close()


def test_reads_find_other_workers_entries_after_a_sync_and_create_nothing(
        workers: tuple[Worker, Worker], client: redis.Redis) -> None:
    a, b = workers
    entry = a.track("erin")
    a.table.inc_gpc(entry, 0)
    a.table.set_gpt(entry, 0, 5)
    a.sync.sync()
    assert b.table.lookup("erin") is None and b.table.lookup("nobody") is None
    b.sync.sync()
    found = b.table.lookup("erin")
    assert found is not None
    assert (b.table.value(found, "gpc0"), b.table.value(found, "gpt0")) == (1, 5)
    assert b.table.lookup("nobody") is None
    assert not client.exists(counter_key("f", "nobody"))


def test_rates_of_two_workers_add_up_in_the_same_periods(
        workers: tuple[Worker, Worker], client: redis.Redis) -> None:
    a, b = workers
    for _ in range(3):
        a.track("frank")
    a.sync.sync()  # a proposes the anchor, the fleet keeps it
    for _ in range(4):
        b.track("frank")
    b.sync.sync()
    anchor = client.hget(counter_key("f", "frank"), "a")
    assert anchor is not None and b.table.entry("frank").anchor == int(anchor)
    fields: dict[str, str] = client.hgetall(counter_key("f", "frank"))  # type: ignore[assignment]
    periods = {name: value for name, value in fields.items()
               if name.startswith("http_req_rate@")}
    assert sum(int(value) for value in periods.values()) == 7
    assert b.value("frank", "http_req_rate") == 7
