"""``balance leastconn``: "The server with the lowest number of connections receives the
connection. Round-robin is performed within groups of servers of the same load"."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from geoproxy.balance.leastconn import LeastConn
from geoproxy.balance.policy import PickMode
from geoproxy.balance.rank import decide
from geoproxy.balance.view import ServerView


def farm(*weights: int) -> tuple[ServerView, ...]:
    return tuple(ServerView(chr(ord("a") + i), i, w) for i, w in enumerate(weights))


def with_inflight(eligible: tuple[ServerView, ...], *counts: int) -> tuple[ServerView, ...]:
    return tuple(replace(s, inflight=n) for s, n in zip(eligible, counts, strict=True))


def pick(policy: LeastConn, eligible: tuple[ServerView, ...]) -> str:
    chosen = decide(policy.rank(eligible, None))
    assert chosen is not None
    return chosen.name


def test_leastconn_ranks_every_server_least_loaded() -> None:
    ranking = LeastConn().rank(farm(1, 1, 1), None)
    assert ranking.mode is PickMode.LEAST_LOADED
    assert sorted(s.name for s in ranking.candidates) == ["a", "b", "c"]


def test_leastconn_picks_the_server_with_fewest_requests_in_flight() -> None:
    policy = LeastConn()
    eligible = with_inflight(farm(1, 1, 1), 4, 1, 3)
    assert {pick(policy, eligible) for _ in range(9)} == {"b"}


def test_leastconn_takes_turns_among_equally_loaded_servers() -> None:
    policy = LeastConn()
    eligible = farm(1, 1, 1)
    assert "".join(pick(policy, eligible) for _ in range(9)) == "abc" * 3


def test_leastconn_takes_turns_only_within_the_least_loaded_group() -> None:
    policy = LeastConn()
    eligible = with_inflight(farm(1, 1, 1, 1), 2, 0, 5, 0)
    assert Counter(pick(policy, eligible) for _ in range(8)) == {"b": 4, "d": 4}


def test_leastconn_weighs_the_load() -> None:
    policy = LeastConn()
    eligible = with_inflight(farm(1, 4), 2, 8)
    # a: 3/1, b: 9/4
    assert pick(policy, eligible) == "b"


def test_leastconn_skips_a_full_server_even_if_least_loaded() -> None:
    policy = LeastConn()
    eligible = (ServerView("a", 0, 1, inflight=1, maxconn=1), ServerView("b", 1, 1, inflight=7))
    assert {pick(policy, eligible) for _ in range(4)} == {"b"}


def test_leastconn_rotation_follows_a_changing_eligible_set() -> None:
    policy = LeastConn()
    eligible = farm(1, 1, 1)
    for _ in range(5):
        ranking = policy.rank(eligible[:2], None)
        assert {s.name for s in ranking.candidates} == {"a", "b"}


def simulate(weights: tuple[int, ...], requests: int, seed: int) -> list[int]:
    """Long-lived requests: each finishes with a fixed chance per step; returns the peak load
    ratio inflight/weight per server after the farm warmed up."""
    rng = random.Random(seed)
    policy = LeastConn()
    inflight = [0] * len(weights)
    samples = [0] * len(weights)
    for step in range(requests):
        eligible = tuple(
            ServerView(f"s{i}", i, w, inflight=n)
            for i, (w, n) in enumerate(zip(weights, inflight, strict=True))
        )
        chosen = decide(policy.rank(eligible, None))
        assert chosen is not None
        inflight[chosen.index] += 1
        for i in range(len(inflight)):
            inflight[i] -= sum(rng.random() < 0.05 for _ in range(inflight[i]))
        if step > requests // 2:
            for i in range(len(inflight)):
                samples[i] += inflight[i]
    return samples


def test_leastconn_keeps_in_flight_counts_proportional_to_weights() -> None:
    samples = simulate((1, 2, 3), 3000, seed=1)
    total = sum(samples)
    shares = [s / total for s in samples]
    for share, expected in zip(shares, (1 / 6, 2 / 6, 3 / 6), strict=True):
        assert abs(share - expected) < 0.03


def test_leastconn_spreads_equal_servers_evenly() -> None:
    samples = simulate((1, 1, 1, 1), 3000, seed=2)
    total = sum(samples)
    assert all(abs(s / total - 0.25) < 0.02 for s in samples)


@given(
    st.lists(st.tuples(st.integers(1, 5), st.integers(0, 9)), min_size=1, max_size=6),
    st.integers(0, 20),
)
def test_leastconn_always_gives_the_request_to_a_least_loaded_server(
    servers: list[tuple[int, int]], turns: int
) -> None:
    policy = LeastConn()
    eligible = tuple(ServerView(f"s{i}", i, w, inflight=n) for i, (w, n) in enumerate(servers))
    for _ in range(turns):
        policy.rank(eligible, None)
    chosen = decide(policy.rank(eligible, None))
    assert chosen is not None
    best = min((s.inflight + 1) / s.weight for s in eligible)
    assert (chosen.inflight + 1) / chosen.weight == best


def test_leastconn_does_not_need_the_request() -> None:
    assert LeastConn().needs_request is False
