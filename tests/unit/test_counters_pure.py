"""Stick counters, the pure parts: HAProxy's frequency counter (``freq_ctr.c`` of 2.6, the
values worked out by hand from its formulas), the ``store`` option parser, the sample -> key
conversions, and one worker's view of a fleet table (``geoproxy.counters.table``) with a
scripted clock and scripted sync answers.
"""

from __future__ import annotations

import ipaddress

import pytest

from geoproxy.counters.datatypes import (
    StoreError,
    StoreItem,
    StoreSpec,
    check_combination,
    parse_store,
)
from geoproxy.counters.entry import USE_REFRESH_MS, Entry, EntryReply
from geoproxy.counters.freq import FreqCtr
from geoproxy.counters.table import CounterTable
from geoproxy.counters.tablekey import key_converter

PERIOD = 10_000
T0 = 1_700_000_000_000  # times are epoch milliseconds (Redis's clock); test times add to it


def _ctr(*events: tuple[int, int]) -> FreqCtr:
    ctr = FreqCtr()
    for now, inc in events:
        ctr.update(T0 + now, PERIOD, inc)
    return ctr


# -- freq_ctr --------------------------------------------------------------------------------


def test_a_new_counter_opens_its_period_at_its_first_event_on_an_even_millisecond() -> None:
    assert _ctr((1001, 1)) == FreqCtr(tick=T0 + 1000, curr=1, prev=0)


@pytest.mark.parametrize(("events", "now", "rate"), [
    ([(1000, 5)], 1000, 5),  # within the first period: the count itself
    ([(1000, 5)], 10_999, 5),
    ([(1000, 5)], 12_000, 4),  # 5 * 9000 / 10000: the share of the last period still in view
    ([(1000, 5)], 20_999, 0),
    ([(1000, 5)], 22_000, 0),  # two periods later: nothing
    ([(1000, 5), (12_000, 3)], 12_000, 7),  # rotated: 5 * 9000 / 10000 + 3
    ([(1000, 1)], 12_000, 1),  # HAProxy's flapping correction: 1 stays 1, not 0
    ([(1000, 2)], 19_000, 0),  # 2 * 2000 / 10000
    ([(5000, 4)], 4000, 4),  # a clock a little behind the period's start: inside it
])
def test_the_rate_is_haproxys_sliding_estimate(events: list[tuple[int, int]], now: int,
                                               rate: int) -> None:
    assert _ctr(*events).read(T0 + now, PERIOD) == rate


def test_a_counter_idle_for_two_periods_starts_over_at_the_event() -> None:
    assert _ctr((1000, 5), (25_001, 1)) == FreqCtr(tick=T0 + 25_000, curr=1, prev=0)


def test_a_counter_survives_redis_text() -> None:
    ctr = _ctr((1000, 5), (12_000, 3))
    assert FreqCtr.parse(ctr.text()) == ctr
    assert FreqCtr.parse("garbage") == FreqCtr()


# -- store options ---------------------------------------------------------------------------


def _ms(text: str) -> int:
    units = {"s": 1000, "m": 60_000}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def test_store_options_parse_into_fields() -> None:
    items = parse_store("http_req_rate(10s),conn_cur,gpc0,gpc0_rate(1m),gpt(2)", _ms)
    spec = StoreSpec.of(tuple(items))
    assert spec.rates == {"http_req_rate": 10_000, "gpc0_rate": 60_000}
    assert spec.counts == {"gpc0"} and spec.tags == {"gpt0", "gpt1"} and spec.conn_cur
    assert spec.gpt_array and not spec.gpc_array
    assert StoreSpec.of(tuple(parse_store("gpc_rate(2,5s)", _ms))).rates == {
        "gpc0_rate": 5000, "gpc1_rate": 5000}


@pytest.mark.parametrize(("text", "message"), [
    ("foo", "unknown store option 'foo'"),
    ("gpc0_rate", "missing argument to store option 'gpc0_rate'"),
    ("gpc_rate(2)", "missing argument to store option 'gpc_rate'"),
    ("conn_cur(1)", "unexpected argument to store option 'conn_cur'"),
    ("gpc(0)", "array size is out of allowed range (1-100) for store option 'gpc'"),
    ("http_req_rate(x)", "error when processing store option 'http_req_rate'"),
])
def test_store_options_haproxy_refuses_are_refused_in_its_words(text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_store(text, _ms)


def test_a_table_may_not_mix_gpc_arrays_and_legacy_counters() -> None:
    assert check_combination([StoreItem("gpc", count=2), StoreItem("gpc0")]) is not None
    assert check_combination([StoreItem("gpc0"), StoreItem("gpc1")]) is None


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "value", "key"), [
    ("ip", ipaddress.IPv4Address("10.0.0.1"), "10.0.0.1"),
    ("ip", ipaddress.IPv6Address("::ffff:10.0.0.1"), "10.0.0.1"),
    ("ip", ipaddress.IPv6Address("2001:db8::1"), None),
    ("ip", "192.168.1.2", "192.168.1.2"),
    ("ipv6", ipaddress.IPv4Address("10.0.0.1"), "::ffff:a00:1"),
    ("integer", "42abc", "42"),
    ("integer", "abc", None),
    ("string", "abcdefgh", "abcd"),
    ("binary", b"ab", "61620000"),
])
def test_samples_become_keys_of_the_tables_type(kind: str, value: object, key: str | None) -> None:
    assert key_converter(kind, 4)(value) == key


# -- one worker's view -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


STORE = "http_req_rate(10s),http_req_cnt,conn_cur,conn_cnt,http_err_cnt,gpc0,gpc0_rate(10s),gpt0"


def _table(store: str = STORE, size: int = 100, expire_ms: int = 30_000,
           clock: Clock | None = None, nopurge: bool = False) -> CounterTable:
    spec = StoreSpec.of(tuple(parse_store(store, _ms)))
    table = CounterTable("t", spec, size=size, expire_ms=expire_ms, nopurge=nopurge,
                         key_of=key_converter("string", 32), clock=clock or Clock())
    table.use_field = "use:me"
    return table


def _track(table: CounterTable, key: str) -> Entry:
    entry = table.track(key)
    assert entry is not None
    return entry


def _reply(**fields: str) -> EntryReply:
    return EntryReply({name.replace("_AT_", "@"): value for name, value in fields.items()})


def test_tracking_counts_the_request_at_once_and_the_gauge_until_it_ends() -> None:
    table = _table()
    entry = _track(table, "k")
    assert table.value(entry, "http_req_cnt") == 1
    assert table.value(entry, "http_req_rate") == 1
    assert table.value(entry, "conn_cnt") == 1
    assert table.value(entry, "conn_cur") == 1
    assert table.value(entry, "sess_cnt") is None  # not stored: no sample
    table.untrack(entry, 100, 200)
    assert table.value(entry, "conn_cur") == 0
    assert table.used() == 1


def test_gpc_increments_clears_and_tags() -> None:
    table = _table()
    entry = _track(table, "k")
    assert table.inc_gpc(entry, 0) == 1
    assert table.inc_gpc(entry, 0) == 2
    assert table.value(entry, "gpc0_rate") == 2
    assert table.clear_gpc(entry, 0) == 2
    assert table.value(entry, "gpc0") == 0
    assert table.clear_gpc(entry, 1) is None  # gpc1 not stored
    table.set_gpt(entry, 0, -1)
    assert table.value(entry, "gpt0") == 0xFFFFFFFF


def test_rates_count_per_period_on_the_entrys_grid_as_freq_ctr_does() -> None:
    """As long as the entry is never idle for two periods (then HAProxy opens a new period
    at the next event, and geoproxy keeps its grid: counters/table.py rule 2)."""
    clock = Clock()
    table = _table("http_req_rate(10s)", clock=clock)
    ctr = FreqCtr()
    for step in (0, 300, 9_999, 10_000, 12_500, 21_000, 29_999, 30_001):
        clock.now = T0 + 1 + step
        entry = _track(table, "k")
        ctr.update(clock.now, PERIOD, 1)
        for later in (0, 1_000, 9_000):
            clock.now += later
            assert table.value(entry, "http_req_rate") == ctr.read(clock.now, PERIOD), step
            clock.now -= later


def test_a_sync_sends_what_changed_and_the_view_becomes_the_fleets_plus_what_came_since() -> None:
    clock = Clock()
    table = _table(clock=clock)
    entry = _track(table, "k")
    records = table.take(100)
    assert len(records) == 1 and records[0].write
    assert records[0].adds == {"http_req_cnt": 1, f"http_req_rate@{T0}": 1, "conn_cnt": 1}
    assert (records[0].use, records[0].anchor) == (1, T0)
    _track(table, "k")  # while the sync is out: what it carries still counts in the view
    assert table.value(entry, "http_req_cnt") == 2
    table.settle(records, [_reply(http_req_cnt="9", a=str(T0), **{
        f"http_req_rate_AT_{T0}": "9", "use:other": f"3@{T0}", "use:me": f"1@{T0}"})], 5)
    assert table.value(entry, "http_req_cnt") == 10  # the fleet's 9, and this worker's 1 since
    assert table.value(entry, "http_req_rate") == 10
    assert table.value(entry, "conn_cur") == 5  # 3 elsewhere, and this worker's 2
    assert table.used() == 5
    assert table.take(100)[0].anchor == 0  # the anchor was sent once


def test_an_older_anchor_from_the_fleet_wins_and_old_periods_and_stale_shares_go() -> None:
    clock = Clock()
    table = _table("http_req_rate(10s),conn_cur", clock=clock)
    clock.now = T0 + 25_000
    entry = _track(table, "k")
    records = table.take(100)
    table.settle(records, [_reply(a=str(T0), **{
        f"http_req_rate_AT_{T0}": "4", f"http_req_rate_AT_{T0 + 10_000}": "6",
        f"http_req_rate_AT_{T0 + 25_000}": "1", "use:dead": f"1@{T0}"})], 1)
    assert entry.anchor == T0
    assert table.value(entry, "http_req_rate") == 1 + 6 * 5 // 10  # 6 in the last period
    assert table.value(entry, "conn_cur") == 1  # the dead worker's share is stale
    _track(table, "k")
    (again,) = table.take(100)
    assert sorted(again.deletes) == [f"http_req_rate@{T0}", "use:dead"]


def test_a_failed_sync_gives_its_changes_back() -> None:
    table = _table()
    entry = _track(table, "k")
    table.inc_gpc(entry, 0)
    first = table.take(100)
    table.clear_gpc(entry, 0)  # a clear after the failed sync's increment wins over it
    _track(table, "k")
    table.restore(first)
    again = table.take(100)
    assert again[0].adds["http_req_cnt"] == 2 and again[0].adds[f"http_req_rate@{T0}"] == 2
    assert again[0].sets == {"gpc0": 0}


def test_a_cleared_counter_is_sent_as_a_value_and_tags_as_values() -> None:
    table = _table()
    entry = _track(table, "k")
    table.clear_gpc(entry, 0)
    table.inc_gpc(entry, 0)
    table.set_gpt(entry, 0, 7)
    (record,) = table.take(100)
    assert record.sets == {"gpc0": 1, "gpt0": 7}
    assert "gpc0" not in record.adds
    table.inc_gpc(entry, 0)
    assert (table.value(entry, "gpc0"), table.value(entry, "gpt0")) == (2, 7)


def test_lookups_of_unknown_keys_are_asked_at_the_next_sync_without_creating_them() -> None:
    table = _table()
    assert table.lookup("k") is None
    (record,) = table.take(100)
    assert not record.write
    table.settle([record], [EntryReply({}, server="s2")], 0)
    assert table.lookup("k") is None and table.entry("k").server == "s2"
    (again,) = table.take(100)
    table.settle([again], [_reply(http_req_cnt="3")], 1)
    found = table.lookup("k")
    assert found is not None and table.value(found, "http_req_cnt") == 3


def test_a_tracked_entry_republishes_its_gauge_and_an_idle_one_is_forgotten() -> None:
    clock = Clock()
    table = _table(clock=clock)
    entry = _track(table, "k")
    table.settle(table.take(100), [_reply(t=str(T0))], 1)
    assert table.take(100) == []
    clock.now += USE_REFRESH_MS
    (refresh,) = table.take(100)
    assert refresh.write and refresh.use == 1  # also renews the entry's expiry in Redis
    table.settle([refresh], [_reply(t=str(T0))], 1)
    table.untrack(entry, 0, 0)
    (withdrawn,) = table.take(100)
    assert withdrawn.use == 0
    table.settle([withdrawn], [_reply(t=str(T0))], 1)
    clock.now += 30_000
    table.take(100)
    assert "k" not in table.entries


def test_the_local_view_is_bounded_by_the_tables_size() -> None:
    table = _table(size=3)
    for key in "abcde":
        table.lookup(key)
        table.take(100)
    assert len(table.entries) == 3


def test_a_full_nopurge_table_takes_no_new_entry() -> None:
    table = _table(size=2, nopurge=True)
    _track(table, "a")
    _track(table, "b")
    assert table.track("c") is None
    assert table.track("a") is not None


def test_an_entry_used_twice_within_a_second_is_read_again_at_every_sync() -> None:
    clock = Clock()
    table = _table(clock=clock)
    table.untrack(_track(table, "once"), 0, 0)
    table.untrack(_track(table, "twice"), 0, 0)
    clock.now += 100
    third = _track(table, "twice")
    records = table.take(100)
    table.settle(records, [_reply(t=str(T0)) for _ in records], 2)
    clock.now += 50
    (again,) = table.take(100)  # nothing new counted: read to keep the view one sync old
    assert again.entry.key == "twice" and not again.write
    table.settle([again], [_reply(http_req_cnt="9")], 2)
    table.untrack(third, 0, 0)
    (ended,) = table.take(100)
    table.settle([ended], [_reply(t=str(T0))], 2)
    clock.now += 2000
    assert table.take(100) == []  # no longer used: no longer read
