"""Where a connection retry goes: each case is what haproxy 2.6 did on loopback against a
refused server (HAProxy manual: "option redispatch", "retries")."""

from __future__ import annotations

import pytest

from geoproxy.balance.view import BackendView, ServerView
from geoproxy.config.model import Backend, Balance, BalanceAlgorithm, Location
from geoproxy.proxy.retry import redispatches

HERE = Location("test", 1)


def backend(
    algorithm: BalanceAlgorithm = BalanceAlgorithm.ROUNDROBIN,
    *,
    redispatch: bool = True,
    interval: int = -1,
    retries: int = 3,
) -> Backend:
    return Backend(
        name="app",
        location=HERE,
        balance=Balance(algorithm),
        retries=retries,
        redispatch=redispatch,
        redispatch_interval=interval,
    )


def plan(config: Backend, usable: int, persistent: bool = False) -> list[bool]:
    """Whether each retry of one request is a redispatch, first retry first, in a backend of
    ``usable`` running primaries whose first one keeps refusing connections."""
    view = BackendView(
        "app", tuple(ServerView(name=f"s{i}", index=i, weight=1) for i in range(usable))
    )
    return [
        redispatches(config, view, "s0", failures, persistent)
        for failures in range(1, config.retries + 1)
    ]


def test_without_option_redispatch_every_retry_stays_on_the_same_server() -> None:
    assert plan(backend(redispatch=False), usable=2) == [False, False, False]


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
    assert plan(backend(algorithm), usable=2) == [True, True, True]


def test_a_hash_backend_redispatches_on_the_last_retry_only() -> None:
    assert plan(backend(BalanceAlgorithm.URI), usable=2) == [False, False, True]


def test_a_single_usable_server_is_redispatched_on_the_last_retry() -> None:
    assert plan(backend(), usable=1) == [False, False, True]


def test_a_persistent_request_is_redispatched_on_the_last_retry_only() -> None:
    assert plan(backend(), usable=2, persistent=True) == [False, False, True]


def test_a_positive_interval_redispatches_every_nth_retry() -> None:
    assert plan(backend(BalanceAlgorithm.URI, interval=1), usable=2) == [True, True, True]
    assert plan(backend(BalanceAlgorithm.URI, interval=2), usable=2) == [False, True, False]


def test_a_negative_interval_counts_back_from_the_last_retry() -> None:
    assert plan(backend(BalanceAlgorithm.URI, interval=-2), usable=2) == [False, True, False]
