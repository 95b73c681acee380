"""``balance first``: "The first server with available connection slots receives the
connection ... Once a server reaches its maxconn value, the next server is used ... This
algorithm ignores the server weight"."""

from __future__ import annotations

from collections import Counter

from geoproxy.balance.first import First
from geoproxy.balance.policy import PickMode
from geoproxy.balance.rank import decide
from geoproxy.balance.view import ServerView


def fill(maxconns: list[int], weights: list[int], requests: int) -> list[int]:
    """Places ``requests`` requests that never end; returns each server's in-flight count."""
    policy = First()
    inflight = [0] * len(maxconns)
    for _ in range(requests):
        eligible = tuple(
            ServerView(f"s{i}", i, weights[i], inflight=inflight[i], maxconn=maxconns[i])
            for i in range(len(maxconns))
        )
        chosen = decide(policy.rank(eligible, None))
        if chosen is None:
            break
        inflight[chosen.index] += 1
    return inflight


def test_first_ranks_in_configuration_order_first_with_room() -> None:
    eligible = tuple(ServerView(f"s{i}", i, 1) for i in range(4))
    ranking = First().rank(eligible, None)
    assert ranking.mode is PickMode.FIRST_WITH_ROOM
    assert [s.name for s in ranking.candidates] == ["s0", "s1", "s2", "s3"]


def test_first_fills_each_server_to_its_maxconn_before_using_the_next() -> None:
    assert fill([2, 3, 5], [1, 1, 1], 4) == [2, 2, 0]
    assert fill([2, 3, 5], [1, 1, 1], 7) == [2, 3, 2]


def test_first_stops_when_every_server_is_full() -> None:
    assert fill([1, 2], [1, 1], 10) == [1, 2]


def test_first_ignores_weights() -> None:
    assert fill([3, 3], [1, 100], 4) == [3, 1]


def test_first_sends_everything_to_the_first_server_without_maxconn() -> None:
    assert fill([0, 0, 0], [1, 1, 1], 50) == [50, 0, 0]


def test_first_returns_to_the_first_server_as_soon_as_it_has_room() -> None:
    policy = First()
    full = (ServerView("a", 0, 1, inflight=1, maxconn=1), ServerView("b", 1, 1, maxconn=1))
    freed = (ServerView("a", 0, 1, inflight=0, maxconn=1), ServerView("b", 1, 1, maxconn=1))
    picked: Counter[str] = Counter()
    for eligible in (full, freed, full, freed):
        chosen = decide(policy.rank(eligible, None))
        assert chosen is not None
        picked[chosen.name] += 1
    assert picked == {"a": 2, "b": 2}


def test_first_hands_back_the_same_ranking_for_the_same_eligible_tuple() -> None:
    policy = First()
    eligible = (ServerView("a", 0, 1),)
    assert policy.rank(eligible, None) is policy.rank(eligible, None)


def test_first_accepts_any_sequence() -> None:
    ranking = First().rank([ServerView("a", 0, 1), ServerView("b", 1, 1)], None)
    assert isinstance(ranking.candidates, tuple)
    assert First().needs_request is False
