"""Where a connection retry goes (geoproxy.proxy.retry), as haproxy 2.6.12 was seen to do it:
with ``retries 2`` and ``option redispatch``, a balanced request to a refusing server was
answered by the other server at once ("+1" retries in its log), a persistent one after one
turn-around ("+2"), and without ``option redispatch`` three attempts ended in a 503."""

from __future__ import annotations

import pytest

from geoproxy.balance.view import AdminState, BackendView, OperState, ServerView
from geoproxy.config.model import Backend, Balance, BalanceAlgorithm, Location
from geoproxy.proxy.retry import redispatches

HERE = Location("t.cfg", 1)


def backend(
    algorithm: BalanceAlgorithm = BalanceAlgorithm.ROUNDROBIN,
    *,
    redispatch: bool = True,
    interval: int = -1,
    retries: int = 2,
) -> Backend:
    return Backend(
        name="app",
        location=HERE,
        balance=Balance(algorithm),
        retries=retries,
        redispatch=redispatch,
        redispatch_interval=interval,
    )


def view(*servers: ServerView) -> BackendView:
    return BackendView("app", servers)


TWO_UP = view(ServerView("dead", 0, 1), ServerView("live", 1, 1))
ONE_UP = view(ServerView("dead", 0, 1), ServerView("live", 1, 1, admin=AdminState.MAINT))


def test_without_option_redispatch_every_retry_stays_on_the_server() -> None:
    for failures in (1, 2):
        assert not redispatches(backend(redispatch=False), TWO_UP, "dead", failures, False)


def test_a_balanced_request_leaves_a_refusing_server_at_the_first_failure() -> None:
    assert redispatches(backend(), TWO_UP, "dead", 1, direct=False)


@pytest.mark.parametrize(
    "algorithm",
    [BalanceAlgorithm.FIRST, BalanceAlgorithm.LEASTCONN, BalanceAlgorithm.RANDOM],
)
def test_every_algorithm_but_the_hashes_redispatches_a_balanced_request_at_once(
    algorithm: BalanceAlgorithm,
) -> None:
    assert redispatches(backend(algorithm), TWO_UP, "dead", 1, direct=False)


@pytest.mark.parametrize(
    "algorithm",
    [BalanceAlgorithm.SOURCE, BalanceAlgorithm.URI, BalanceAlgorithm.HDR],
)
def test_a_hashing_algorithm_keeps_the_server_until_the_last_retry(
    algorithm: BalanceAlgorithm,
) -> None:
    assert not redispatches(backend(algorithm), TWO_UP, "dead", 1, direct=False)
    assert redispatches(backend(algorithm), TWO_UP, "dead", 2, direct=False)


def test_a_persistent_request_keeps_its_server_until_the_last_retry() -> None:
    assert not redispatches(backend(), TWO_UP, "dead", 1, direct=True)
    assert redispatches(backend(), TWO_UP, "dead", 2, direct=True)


def test_with_a_single_usable_primary_the_balanced_request_waits_for_the_last_retry() -> None:
    assert not redispatches(backend(), ONE_UP, "dead", 1, direct=False)
    assert redispatches(backend(), ONE_UP, "dead", 2, direct=False)


def test_a_server_seen_down_meanwhile_is_left_at_once_even_by_a_persistent_request() -> None:
    down = view(ServerView("dead", 0, 1, oper=OperState.DOWN), ServerView("live", 1, 1))
    assert redispatches(backend(), down, "dead", 1, direct=True)


def test_a_positive_interval_redispatches_every_that_many_failures() -> None:
    every_other = backend(interval=2, retries=4)
    decisions = [redispatches(every_other, TWO_UP, "dead", n, direct=True) for n in (1, 2, 3, 4)]
    assert decisions == [False, True, False, True]


def test_a_negative_interval_counts_from_the_last_retry() -> None:
    second_to_last = backend(interval=-2, retries=3)  # every (3 + 1 - 2) = 2 failures
    decisions = [redispatches(second_to_last, TWO_UP, "dead", n, direct=True) for n in (1, 2, 3)]
    assert decisions == [False, True, False]


# Whole plans: every retry of one request, first retry first.


def plan(config: Backend, usable: int, persistent: bool = False) -> list[bool]:
    """Whether each retry of one request is a redispatch, first retry first, in a backend of
    ``usable`` running primaries (``retries 3``) whose first one keeps refusing connections."""
    view = BackendView(
        "app", tuple(ServerView(name=f"s{i}", index=i, weight=1) for i in range(usable))
    )
    return [
        redispatches(config, view, "s0", failures, persistent)
        for failures in range(1, config.retries + 1)
    ]


def test_without_option_redispatch_every_retry_stays_on_the_same_server() -> None:
    assert plan(backend(redispatch=False, retries=3), usable=2) == [False, False, False]


@pytest.mark.parametrize(
    "algorithm",
    [
        BalanceAlgorithm.ROUNDROBIN,
        BalanceAlgorithm.STATIC_RR,
        BalanceAlgorithm.LEASTCONN,
        BalanceAlgorithm.FIRST,
        BalanceAlgorithm.RANDOM,
    ],
)
def test_a_non_hash_backend_with_another_usable_server_redispatches_at_once(
    algorithm: BalanceAlgorithm,
) -> None:
    assert plan(backend(algorithm, retries=3), usable=2) == [True, True, True]


def test_a_hash_backend_redispatches_on_the_last_retry_only() -> None:
    assert plan(backend(BalanceAlgorithm.URI, retries=3), usable=2) == [False, False, True]


def test_a_single_usable_server_is_redispatched_on_the_last_retry() -> None:
    assert plan(backend(retries=3), usable=1) == [False, False, True]


def test_a_persistent_request_is_redispatched_on_the_last_retry_only() -> None:
    assert plan(backend(retries=3), usable=2, persistent=True) == [False, False, True]


def test_a_positive_interval_redispatches_every_nth_retry() -> None:
    uri = BalanceAlgorithm.URI
    assert plan(backend(uri, interval=1, retries=3), usable=2) == [True, True, True]
    assert plan(backend(uri, interval=2, retries=3), usable=2) == [False, True, False]


def test_a_negative_interval_counts_back_from_the_last_retry() -> None:
    uri = BalanceAlgorithm.URI
    assert plan(backend(uri, interval=-2, retries=3), usable=2) == [False, True, False]
