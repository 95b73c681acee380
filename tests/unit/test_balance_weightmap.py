"""HAProxy's server map (``lb_map.c``) and the walk orders built on it."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoproxy.balance.weightmap import WalkOrders, build_map, weight_divisor


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((1,), (0,)),
        ((1, 1, 1), (0, 1, 2)),
        ((5, 1, 1), (0, 0, 0, 1, 0, 0, 2)),
        ((5, 1, 2), (0, 0, 1, 2, 0, 0, 0, 2)),
        ((1, 2, 3), (0, 2, 1, 2, 1, 2)),
        ((0, 2, 1), (1, 1, 2)),
    ],
)
def test_the_map_is_haproxys_recalc_server_map(
    weights: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    assert build_map(weights) == expected


def test_a_map_of_zero_weights_is_empty() -> None:
    assert build_map((0, 0)) == ()
    assert build_map(()) == ()


weight_lists = st.lists(st.integers(0, 9), min_size=1, max_size=7)


@given(weight_lists)
def test_every_server_gets_as_many_slots_as_its_weight(weights: list[int]) -> None:
    counts = Counter(build_map(weights))
    assert [counts[i] for i in range(len(weights))] == weights


@given(weight_lists)
def test_slot_zero_always_holds_the_first_weighted_server(weights: list[int]) -> None:
    slots = build_map(weights)
    if slots:
        assert slots[0] == next(i for i, w in enumerate(weights) if w)


@given(weight_lists, st.integers(2, 16))
def test_scaling_every_weight_repeats_the_same_map(weights: list[int], factor: int) -> None:
    # why the divisor HAProxy applies (or BE_WEIGHT_SCALE) never changes a hash's server
    assert build_map([w * factor for w in weights]) == build_map(weights) * factor


@pytest.mark.parametrize(
    ("weights", "divisor"),
    [((10, 20, 30), 10), ((3, 0, 6), 3), ((0, 0), 1), ((7, 5), 1), ((4,), 4)],
)
def test_weight_divisor_is_the_gcd_of_the_non_zero_weights(
    weights: tuple[int, ...], divisor: int
) -> None:
    assert weight_divisor(weights) == divisor


def test_walk_orders_list_servers_as_met_walking_forward() -> None:
    walk = WalkOrders((0, 0, 1, 2, 0, 0, 0, 2), 3)
    assert walk.order(0) == (0, 1, 2)
    assert walk.order(2) == (1, 2, 0)
    assert walk.order(3) == (2, 0, 1)
    assert walk.order(7) == (2, 0, 1)


def test_walk_orders_leave_out_servers_without_a_slot() -> None:
    walk = WalkOrders((1, 1, 3), 4)
    assert walk.order(0) == (1, 3)


@given(weight_lists.filter(any), st.data())
def test_walk_orders_are_permutations_starting_with_the_slot_owner(
    weights: list[int], data: st.DataObject
) -> None:
    slots = build_map(weights)
    walk = WalkOrders(slots, len(weights))
    slot = data.draw(st.integers(0, len(slots) - 1))
    order = walk.order(slot)
    assert order[0] == slots[slot]
    assert sorted(order) == [i for i, w in enumerate(weights) if w]
    # each next server is the next new one met walking forward
    met = list(dict.fromkeys(slots[slot:] + slots[:slot]))
    assert list(order) == met
