"""``balance roundrobin`` (smooth, dynamic weights) and ``balance static-rr`` (HAProxy's map,
configured weights): "Each server is used in turns, according to their weights"."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoproxy.balance.policy import PickMode
from geoproxy.balance.rank import decide
from geoproxy.balance.roundrobin import RoundRobin, StaticRoundRobin
from geoproxy.balance.view import ServerView


def farm(*weights: int) -> tuple[ServerView, ...]:
    return tuple(ServerView(chr(ord("a") + i), i, w) for i, w in enumerate(weights))


def picks(policy: RoundRobin | StaticRoundRobin, eligible: tuple[ServerView, ...], n: int) -> str:
    return "".join(policy.rank(eligible, None).candidates[0].name for _ in range(n))


def longest_run(sequence: str) -> int:
    best = run = 0
    previous = ""
    for char in sequence:
        run = run + 1 if char == previous else 1
        previous = char
        best = max(best, run)
    return best


# --------------------------------------------------------------------------------------------
# roundrobin


def test_roundrobin_interleaves_weights_5_1_1_as_smooth_wrr() -> None:
    assert picks(RoundRobin(), farm(5, 1, 1), 14) == "aabacaa" * 2


def test_roundrobin_alternates_equal_weights_in_configuration_order() -> None:
    assert picks(RoundRobin(), farm(1, 1, 1), 9) == "abc" * 3


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((2, 1), "aba"),
        ((3, 1), "aaba"),
        ((1, 2), "bab"),
        ((4, 2, 1), "abacaba"),
        ((1, 1, 2), "cabc"),
    ],
)
def test_roundrobin_cycle_matches_nginx_smooth_wrr(weights: tuple[int, ...], expected: str) -> None:
    assert picks(RoundRobin(), farm(*weights), len(expected) * 3) == expected * 3


def test_roundrobin_distributes_6000_picks_exactly_by_weights_1_2_3() -> None:
    counts = Counter(picks(RoundRobin(), farm(1, 2, 3), 6000))
    assert counts == {"a": 1000, "b": 2000, "c": 3000}


def test_roundrobin_never_bursts_the_heavy_server() -> None:
    sequence = picks(RoundRobin(), farm(5, 1, 1), 700)
    # plain weighted round robin would send "aaaaabc"; smooth WRR splits a's turns around b
    # and c, so no run exceeds 4 (two across a cycle boundary) and b and c never meet
    assert longest_run(sequence) == 4
    assert "bc" not in sequence and "cb" not in sequence


@given(st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_roundrobin_gives_each_server_its_weight_in_every_cycle(weights: list[int]) -> None:
    eligible = farm(*weights)
    policy = RoundRobin()
    total = sum(weights)
    for _ in range(3):
        counts = Counter(picks(policy, eligible, total))
        assert [counts[s.name] for s in eligible] == weights


@given(st.lists(st.integers(1, 12), min_size=2, max_size=6))
def test_roundrobin_spreads_each_server_evenly_across_the_cycle(weights: list[int]) -> None:
    eligible = farm(*weights)
    total = sum(weights)
    sequence = picks(RoundRobin(), eligible, total * 2)
    for server, weight in zip(eligible, weights, strict=True):
        # smooth WRR: over any window of total picks, a server's share is its weight
        for start in range(total):
            window = sequence[start : start + total]
            assert abs(window.count(server.name) - weight) <= 1


def test_roundrobin_ranking_holds_every_eligible_server_once() -> None:
    eligible = farm(3, 2, 1, 1)
    policy = RoundRobin()
    for _ in range(20):
        ranking = policy.rank(eligible, None)
        assert ranking.mode is PickMode.FIRST_WITH_ROOM
        assert sorted(s.name for s in ranking.candidates) == ["a", "b", "c", "d"]


def test_roundrobin_ranks_the_pick_first_then_the_servers_most_owed_a_turn() -> None:
    policy = RoundRobin()
    eligible = farm(5, 1, 1)
    # scores after gaining weights: a 5, b 1, c 1 -> a picked; next most owed: b then c
    assert [s.name for s in policy.rank(eligible, None).candidates] == ["a", "b", "c"]
    # scores: a -2+5=3, b 2, c 2
    assert [s.name for s in policy.rank(eligible, None).candidates] == ["a", "b", "c"]
    # scores: a -4+5=1, b 3, c 3 -> b first, then c, then a
    assert [s.name for s in policy.rank(eligible, None).candidates] == ["b", "c", "a"]


def test_roundrobin_hands_a_full_servers_turn_to_the_next_most_owed() -> None:
    policy = RoundRobin()
    eligible = (ServerView("a", 0, 2, inflight=1, maxconn=1),) + farm(2, 1)[1:]
    chosen = [decide(policy.rank(eligible, None)) for _ in range(6)]
    assert all(s is not None and s.name != "a" for s in chosen)


def test_roundrobin_returns_the_views_it_was_given() -> None:
    eligible = farm(1, 1)
    ranking = RoundRobin().rank(eligible, None)
    assert all(any(c is e for e in eligible) for c in ranking.candidates)


def test_roundrobin_follows_a_weight_change_from_the_next_request() -> None:
    policy = RoundRobin()
    picks(policy, farm(1, 1), 10)
    counts = Counter(picks(policy, farm(1, 3), 400))
    assert counts == {"a": 100, "b": 300}


def test_roundrobin_follows_a_slowstart_ramp() -> None:
    policy = RoundRobin()
    shares = []
    for ramp in (1, 2, 5, 10):
        counts = Counter(picks(policy, farm(10, ramp), 11 * 10 * 4))
        shares.append(counts["b"] / sum(counts.values()))
    assert shares == sorted(shares)
    assert shares[0] == pytest.approx(1 / 11, abs=0.01)
    assert shares[-1] == pytest.approx(0.5, abs=0.01)


def test_roundrobin_never_picks_a_server_that_left_the_eligible_set() -> None:
    policy = RoundRobin()
    full = farm(1, 1, 1)
    picks(policy, full, 5)
    without_b = (full[0], full[2])
    assert set(picks(policy, without_b, 50)) == {"a", "c"}
    assert Counter(picks(policy, full, 300)) == {"a": 100, "b": 100, "c": 100}


def test_roundrobin_with_one_server_always_picks_it() -> None:
    assert picks(RoundRobin(), farm(7), 5) == "aaaaa"


def test_roundrobin_reads_current_views_each_call() -> None:
    policy = RoundRobin()
    eligible = farm(1, 1)
    busy = tuple(replace(s, inflight=9) for s in eligible)
    ranking = policy.rank(busy, None)
    assert all(c.inflight == 9 for c in ranking.candidates)


def test_roundrobin_does_not_need_the_request() -> None:
    assert RoundRobin().needs_request is False


# --------------------------------------------------------------------------------------------
# static-rr


def static(*weights: int) -> StaticRoundRobin:
    return StaticRoundRobin({chr(ord("a") + i): w for i, w in enumerate(weights)})


def test_static_rr_follows_haproxys_map_order() -> None:
    # observed from haproxy 2.6.12: servers s0, s1, s2 with weights 5, 1, 2, nbthread 1
    assert picks(static(5, 1, 2), farm(5, 1, 2), 24) == "aabcaaac" * 3


def test_static_rr_starts_with_the_first_server() -> None:
    assert picks(static(1, 9), farm(1, 9), 1) == "a"


def test_static_rr_distributes_6000_picks_exactly_by_weights_1_2_3() -> None:
    counts = Counter(picks(static(1, 2, 3), farm(1, 2, 3), 6000))
    assert counts == {"a": 1000, "b": 2000, "c": 3000}


def test_static_rr_ignores_weights_changed_at_run_time() -> None:
    policy = static(1, 1)
    assert Counter(picks(policy, farm(1, 5), 100)) == {"a": 50, "b": 50}


def test_static_rr_reduces_weights_by_their_common_divisor() -> None:
    # slot 0 is always the first server, whatever the weights (lb_map.c)
    assert picks(static(10, 20), farm(10, 20), 6) == "abbabb"
    assert picks(static(1, 2), farm(1, 2), 6) == "abbabb"


def test_static_rr_rebuilds_the_map_when_a_server_goes_down() -> None:
    policy = static(1, 2, 3)
    eligible = farm(1, 2, 3)
    picks(policy, eligible, 4)
    counts = Counter(picks(policy, (eligible[0], eligible[2]), 400))
    assert counts == {"a": 100, "c": 300}


def test_static_rr_ranks_the_slot_then_the_servers_met_further_in_the_map() -> None:
    policy = static(5, 1, 2)
    eligible = farm(5, 1, 2)
    # map: a a b c a a a c
    orders = ["".join(s.name for s in policy.rank(eligible, None).candidates) for _ in range(4)]
    assert orders == ["abc", "abc", "bca", "cab"]


def test_static_rr_skips_a_full_server_to_the_next_in_the_map() -> None:
    policy = static(1, 1, 1)
    eligible: tuple[ServerView, ...] = (
        ServerView("a", 0, 1),
        ServerView("b", 1, 1, inflight=2, maxconn=2),
    )
    eligible += (ServerView("c", 2, 1),)
    chosen = "".join(s.name for s in (decide(policy.rank(eligible, None)) for _ in range(6)) if s)
    assert chosen == "acc" * 2


def test_static_rr_repeats_its_rankings_for_the_same_eligible_tuple() -> None:
    policy = static(1, 1)
    eligible = farm(1, 1)
    first = [policy.rank(eligible, None) for _ in range(2)]
    again = [policy.rank(eligible, None) for _ in range(2)]
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_static_rr_rankings_hold_the_calls_own_views() -> None:
    policy = static(1, 1)
    policy.rank(farm(1, 1), None)
    busy = tuple(replace(s, inflight=4) for s in farm(1, 1))
    assert all(c.inflight == 4 for c in policy.rank(busy, None).candidates)


def test_static_rr_gives_an_enabled_zero_weight_server_one_slot() -> None:
    policy = static(0, 2)
    # weights reduce by 2: b keeps one slot, and a gets one
    assert Counter(picks(policy, farm(1, 2), 30)) == {"a": 15, "b": 15}


@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(1, 4))
def test_static_rr_gives_each_server_its_weight_in_every_cycle(
    weights: list[int], cycles: int
) -> None:
    policy = static(*weights)
    eligible = farm(*weights)
    counts = Counter(picks(policy, eligible, sum(weights) * cycles))
    assert [counts[s.name] for s in eligible] == [w * cycles for w in weights]
