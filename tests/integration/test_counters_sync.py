"""Fleet-wide stick counters on a real Redis: two workers' views (``CounterTables``) kept in
step by their ``CounterSync`` through ``counters_sync.lua``. Their counts add up, gauges sum
and a dead worker's share ages out, entries expire and the table keeps to its size, reads
never create, and the script's frequency counter is the Python one (its twin).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis

from geoproxy.config import parse_text
from geoproxy.counters import table as table_module
from geoproxy.counters.freq import FreqCtr
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
        a.table.untrack(a.table.track("alice"), 10, 20)
    for _ in range(3):
        b.table.untrack(b.table.track("alice"), 10, 20)
    a.sync.sync()
    b.sync.sync()
    assert client.hget(counter_key("f", "alice"), "http_req_cnt") == "8"
    assert b.value("alice", "http_req_cnt") == 8 and b.value("alice", "http_req_rate") == 8
    assert a.value("alice", "http_req_cnt") == 5  # a has not heard of b's yet
    a.table.track("alice")
    a.sync.sync()
    assert a.value("alice", "http_req_cnt") == 9 and a.value("alice", "http_req_rate") == 9


def test_one_sync_is_one_call_whatever_the_number_of_entries(
        workers: tuple[Worker, Worker], redis_url: str) -> None:
    a, _ = workers
    for index in range(50):
        a.table.track(f"client{index}")
    with wire_log(redis_url) as log:
        a.sync.sync()
    assert [command[0] for command in log] == ["EVALSHA"]


def test_conn_cur_sums_the_workers_and_a_dead_workers_share_ages_out(
        workers: tuple[Worker, Worker], redis_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the production times (a share refreshed every 1 s, stale after 3 s), scaled down
    monkeypatch.setattr(counters_module, "USE_STALE_MS", 300)
    monkeypatch.setattr(table_module, "USE_REFRESH_MS", 100)
    a, b = Worker(redis_url, "host-a:9"), Worker(redis_url, "host-b:9")
    try:
        held = [a.table.track("bob"), a.table.track("bob")]
        b.table.track("bob")
        a.sync.sync()
        b.sync.sync()
        assert b.value("bob", "conn_cur") == 3
        for entry in held:
            a.table.untrack(entry, 0, 0)
        a.sync.sync()
        b.table.count(b.table.entry("bob"), "http_req")  # anything that makes b sync it
        b.sync.sync()
        assert b.value("bob", "conn_cur") == 1
        a.table.track("bob")
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


def test_entries_expire_after_the_tables_expire(redis_url: str, client: redis.Redis) -> None:
    worker = Worker(redis_url, "host-a:1", expire="300ms")
    try:
        worker.table.track("carol")
        worker.sync.sync()
        assert 0 < client.pttl(counter_key("f", "carol")) <= 300
        assert client.zcard(counter_index("f")) == 1
        time.sleep(0.35)
        worker.table.track("dave")
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
            worker.table.track(key)
        worker.sync.sync()
        time.sleep(0.01)
        worker.table.track("k1")  # used again: the newest now
        worker.table.track("k4")
        worker.sync.sync()
        assert sorted(client.zrange(counter_index("f"), 0, -1)) == ["k1", "k3", "k4"]
        assert not client.exists(counter_key("f", "k2"))
        assert worker.table.used() == 3
    finally:
        worker.close()


def test_nopurge_refuses_new_entries_when_full(redis_url: str, client: redis.Redis) -> None:
    worker = Worker(redis_url, "host-a:1", size="2", nopurge="nopurge")
    try:
        worker.table.track("k1")
        worker.table.track("k2")
        worker.sync.sync()
        entry = worker.table.track("k3")
        worker.sync.sync()
        assert not client.exists(counter_key("f", "k3"))
        assert not entry.is_known and worker.table.used() == 2
    finally:
        worker.close()


def test_reads_find_other_workers_entries_after_a_sync_and_create_nothing(
        workers: tuple[Worker, Worker], client: redis.Redis) -> None:
    a, b = workers
    entry = a.table.track("erin")
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


def test_the_scripts_frequency_counter_is_the_python_twin(
        workers: tuple[Worker, Worker], client: redis.Redis) -> None:
    a, _ = workers
    key = counter_key("f", "frank")
    for before in ("5/0@{t}", "5/2@{t}", "1/0@{t}"):
        for age in (1_000, 12_000, 25_000):  # same period, the next one, two periods later
            now_ms = int(time.time() * 1000)
            text = before.format(t=now_ms - age)
            client.hset(key, "http_req_rate", text)
            client.zadd(counter_index("f"), {"frank": now_ms})
            entry = a.table.track("frank")
            sent = FreqCtr.parse(text)
            a.sync.sync()
            answered = client.hget(key, "http_req_rate")
            assert isinstance(answered, str)
            redis_now = int(client.hget(key, "t") or 0)
            sent.update(redis_now, 10_000, 1)
            assert FreqCtr.parse(answered) == sent, (text, answered)
            a.table.untrack(entry, 0, 0)
            a.sync.sync()
            client.delete(key)
