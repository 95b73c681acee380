"""``balance random(<draws>)``: "the number of draws before selecting the least loaded of
these servers ... The default value is 2" (the power of two random choices)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoproxy.balance.policy import PickMode
from geoproxy.balance.random import RandomDraws
from geoproxy.balance.rank import decide
from geoproxy.balance.view import ServerView


def farm(*weights: int) -> tuple[ServerView, ...]:
    return tuple(ServerView(f"s{i}", i, w) for i, w in enumerate(weights))


def test_one_draw_distributes_6000_picks_by_weights_1_2_3() -> None:
    policy = RandomDraws(1, random.Random(1))
    eligible = farm(1, 2, 3)
    counts = Counter(policy.rank(eligible, None).candidates[0].name for _ in range(6000))
    for name, expected in (("s0", 1000), ("s1", 2000), ("s2", 3000)):
        assert counts[name] == pytest.approx(expected, rel=0.06)


def test_draws_are_ranked_least_loaded_and_distinct() -> None:
    policy = RandomDraws(3, random.Random(2))
    eligible = farm(1, 1)
    for _ in range(50):
        ranking = policy.rank(eligible, None)
        assert ranking.mode is PickMode.LEAST_LOADED
        names = [s.name for s in ranking.candidates]
        assert 1 <= len(names) <= 2 and len(set(names)) == len(names)


def test_two_draws_never_give_a_request_to_the_most_loaded_server_when_another_is_drawn() -> None:
    policy = RandomDraws(2, random.Random(3))
    eligible = (
        ServerView("busy", 0, 1, inflight=50),
        ServerView("s1", 1, 1, inflight=1),
        ServerView("s2", 2, 1, inflight=2),
    )
    picked: Counter[str] = Counter()
    for _ in range(3000):
        ranking = policy.rank(eligible, None)
        chosen = decide(ranking)
        assert chosen is not None
        if len(ranking.candidates) > 1:
            assert chosen.name != "busy"
        picked[chosen.name] += 1
    # busy only wins when drawn twice: 1/9 of the time
    assert picked["busy"] == pytest.approx(3000 / 9, rel=0.15)


def test_more_draws_converge_towards_leastconn() -> None:
    eligible = tuple(ServerView(f"s{i}", i, 1, inflight=i) for i in range(6))
    shares = []
    for draws in (1, 2, 4, 8):
        policy = RandomDraws(draws, random.Random(4))
        chosen = [decide(policy.rank(eligible, None)) for _ in range(2000)]
        shares.append(sum(1 for s in chosen if s is not None and s.name == "s0") / 2000)
    assert shares == sorted(shares)
    assert shares[-1] > 0.7


def test_a_seeded_rng_gives_the_same_draws() -> None:
    eligible = farm(3, 1, 4, 1, 5)
    runs = []
    for _ in range(2):
        policy = RandomDraws(2, random.Random(42))
        runs.append(
            [tuple(s.name for s in policy.rank(eligible, None).candidates) for _ in range(30)]
        )
    assert runs[0] == runs[1]


def test_draws_follow_a_weight_change_at_once() -> None:
    policy = RandomDraws(1, random.Random(5))
    policy.rank(farm(1, 1), None)
    counts = Counter(policy.rank(farm(1, 9), None).candidates[0].name for _ in range(2000))
    assert counts["s1"] == pytest.approx(1800, rel=0.05)


def test_a_server_outside_the_eligible_set_is_never_drawn() -> None:
    policy = RandomDraws(2, random.Random(6))
    eligible = farm(1, 1, 1)[1:]
    drawn = {s.name for _ in range(200) for s in policy.rank(eligible, None).candidates}
    assert drawn == {"s1", "s2"}


def test_random_needs_at_least_one_draw() -> None:
    with pytest.raises(ValueError, match="at least one draw"):
        RandomDraws(0, random.Random(0))


@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(1, 5), st.integers())
def test_draws_are_eligible_servers_at_most_draws_of_them(
    weights: list[int], draws: int, seed: int
) -> None:
    eligible = farm(*weights)
    ranking = RandomDraws(draws, random.Random(seed)).rank(eligible, None)
    assert 1 <= len(ranking.candidates) <= draws
    assert all(any(c is e for e in eligible) for c in ranking.candidates)


def test_random_does_not_need_the_request() -> None:
    assert RandomDraws(2, random.Random(0)).needs_request is False
