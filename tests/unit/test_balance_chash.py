"""``hash-type consistent``: "when a server goes up or down, only its associations are moved.
When a server is added to the farm, only a few part of the mappings are redistributed"."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoproxy.balance.chash import POINTS_PER_WEIGHT, PointKeys, Ring
from geoproxy.balance.hashfuncs import MASK32, sdbm
from geoproxy.balance.hashing import HashPolicy, UriHash, UrlParamHash
from geoproxy.balance.policy import PickMode, RequestKeys
from geoproxy.balance.rank import decide
from geoproxy.balance.view import OperState, ServerView
from geoproxy.config.model import HashType


def farm(*weights: int, prefix: str = "s") -> tuple[ServerView, ...]:
    return tuple(ServerView(f"{prefix}{i}", i, w) for i, w in enumerate(weights))


def consistent(key_hash: UriHash | UrlParamHash | None = None) -> HashPolicy:
    key_hash = key_hash or UriHash(sdbm, True, 0, 0, False)
    return HashPolicy(key_hash, HashType.CONSISTENT, {})


def uris(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"/obj/{rng.randrange(10**9)}" for _ in range(count)]


def assign(policy: HashPolicy, eligible: tuple[ServerView, ...], keys: list[str]) -> list[str]:
    return [
        policy.rank(eligible, RequestKeys("", k, lambda _: None)).candidates[0].name for k in keys
    ]


KEYS = uris(4000, seed=1)


def test_the_same_key_always_reaches_the_same_server() -> None:
    policy = consistent()
    eligible = farm(1, 1, 1, 1)
    assert assign(policy, eligible, KEYS) == assign(policy, eligible, KEYS)


def test_consistent_hashing_spreads_keys_roughly_by_weight() -> None:
    counts = Counter(assign(consistent(), farm(1, 2, 3), uris(6000, seed=2)))
    # a ring is never perfectly smooth ("the distribution will never be very smooth")
    for name, expected in (("s0", 1000), ("s1", 2000), ("s2", 3000)):
        assert counts[name] == pytest.approx(expected, rel=0.15)


@pytest.mark.parametrize("down", [0, 2, 4])
def test_a_server_going_down_moves_only_its_own_keys(down: int) -> None:
    policy = consistent()
    eligible = farm(1, 1, 1, 1, 1)
    before = assign(policy, eligible, KEYS)
    survivors = eligible[:down] + eligible[down + 1 :]
    after = assign(policy, survivors, KEYS)
    lost = f"s{down}"
    for b, a in zip(before, after, strict=True):
        assert a == b or b == lost
    moved = sum(b != a for b, a in zip(before, after, strict=True))
    assert moved / len(KEYS) == pytest.approx(1 / 5, abs=0.07)


def test_the_keys_of_a_lost_server_spread_over_the_others() -> None:
    policy = consistent()
    eligible = farm(1, 1, 1, 1, 1)
    before = assign(policy, eligible, KEYS)
    after = assign(policy, eligible[1:], KEYS)
    heirs = Counter(a for b, a in zip(before, after, strict=True) if b == "s0")
    assert set(heirs) == {"s1", "s2", "s3", "s4"}


def test_a_server_coming_back_gets_back_exactly_its_keys() -> None:
    policy = consistent()
    eligible = farm(1, 1, 1, 1)
    before = assign(policy, eligible, KEYS)
    assign(policy, eligible[1:], KEYS)
    assert assign(policy, eligible, KEYS) == before


def test_adding_a_server_moves_only_keys_to_the_new_server() -> None:
    policy = consistent()
    eligible = farm(1, 1, 1, 1)
    before = assign(policy, eligible, KEYS)
    grown = eligible + (ServerView("new", 4, 1),)
    after = assign(policy, grown, KEYS)
    for b, a in zip(before, after, strict=True):
        assert a == b or a == "new"
    assert after.count("new") / len(KEYS) == pytest.approx(1 / 5, abs=0.07)


def test_the_mapping_does_not_depend_on_configuration_order() -> None:
    policy = consistent()
    eligible = farm(1, 2, 1, 3)
    shuffled = tuple(reversed(eligible))
    assert assign(policy, eligible, KEYS) == assign(consistent(), shuffled, KEYS)


def test_the_mapping_does_not_depend_on_the_process() -> None:
    eligible = farm(2, 1, 1)
    assert assign(consistent(), eligible, KEYS) == assign(consistent(), eligible, KEYS)


def test_a_weight_change_moves_keys_only_to_or_from_that_server() -> None:
    policy = consistent()
    eligible = farm(2, 2, 2)
    before = assign(policy, eligible, KEYS)
    heavier = (eligible[0], replace(eligible[1], weight=4), eligible[2])
    after = assign(policy, heavier, KEYS)
    for b, a in zip(before, after, strict=True):
        assert a == b or a == "s1"
    assert after.count("s1") > before.count("s1")
    lighter = (eligible[0], replace(eligible[1], weight=1), eligible[2])
    after = assign(policy, lighter, KEYS)
    for b, a in zip(before, after, strict=True):
        assert a == b or b == "s1"
    assert after.count("s1") < before.count("s1")


def test_the_fallback_is_where_the_key_goes_if_its_server_goes_down() -> None:
    policy = consistent()
    eligible = farm(1, 2, 1, 1)
    for key in KEYS[:500]:
        ranking = policy.rank(eligible, RequestKeys("", key, lambda _: None))
        first, second = ranking.candidates[0], ranking.candidates[1]
        without = tuple(s for s in eligible if s is not first)
        assert assign(policy, without, [key]) == [second.name]


def test_a_full_hashed_server_hands_the_request_to_its_heir() -> None:
    policy = consistent()
    eligible = farm(1, 1, 1)
    key = KEYS[0]
    owner = assign(policy, eligible, [key])[0]
    heir = assign(policy, tuple(s for s in eligible if s.name != owner), [key])[0]
    full = tuple(replace(s, inflight=2, maxconn=2) if s.name == owner else s for s in eligible)
    ranking = policy.rank(full, RequestKeys("", key, lambda _: None))
    assert ranking.mode is PickMode.FIRST_WITH_ROOM
    chosen = decide(ranking)
    assert chosen is not None and chosen.name == heir


def test_a_missing_key_walks_the_ring_point_by_point() -> None:
    policy = consistent(UrlParamHash(sdbm, True, "uid"))
    eligible = farm(1, 2, 3)
    points = 6 * POINTS_PER_WEIGHT
    keyless = RequestKeys("", "/no-param", lambda _: None)
    walked = Counter(policy.rank(eligible, keyless).candidates[0].name for _ in range(points * 3))
    assert walked == {"s0": 16 * 3, "s1": 32 * 3, "s2": 48 * 3}


def test_rankings_are_permutations_of_the_eligible_servers() -> None:
    policy = consistent()
    eligible = farm(1, 3, 2, 1)
    for key in KEYS[:300]:
        ranking = policy.rank(eligible, RequestKeys("", key, lambda _: None))
        assert sorted(s.name for s in ranking.candidates) == ["s0", "s1", "s2", "s3"]


def test_a_server_that_is_down_is_never_picked_even_if_listed() -> None:
    from geoproxy.balance.rank import eligible as eligible_of
    from geoproxy.balance.view import BackendView

    view = BackendView("be", (farm(1, 1, 1)[0], replace(farm(1, 1, 1)[1], oper=OperState.DOWN)))
    assert set(assign(consistent(), eligible_of(view, False), KEYS[:300])) == {"s0"}


# --------------------------------------------------------------------------------------------
# The ring itself


def test_each_server_owns_weight_times_16_points() -> None:
    ring = Ring([("a", 1), ("b", 3)], PointKeys())
    owners = Counter(ring.walk.owners)
    assert owners == {0: POINTS_PER_WEIGHT, 1: 3 * POINTS_PER_WEIGHT}


def test_a_servers_points_depend_only_on_its_name() -> None:
    keys = PointKeys()
    assert keys.of("web1", 32)[:16] == PointKeys().of("web1", 16)
    assert keys.of("web1", 16) != keys.of("web2", 16)


def test_a_lighter_server_keeps_only_its_first_points() -> None:
    keys = PointKeys()
    heavy = keys.of("web1", 64)
    assert keys.of("web1", 16) == heavy[:16]
    assert Counter(Ring([("web1", 1)], keys).walk.owners) == {0: POINTS_PER_WEIGHT}


def brute_force_owner(ring_points: list[tuple[int, int]], h: int) -> int:
    """HAProxy's chash_get_server_hash on a plain list: closest point, the one before on ties."""
    best = None
    for key, owner in ring_points:
        before = (h - key) & MASK32
        after = (key - h) & MASK32
        for distance, side in ((before, 0), (after, 1)):
            if best is None or (distance, side) < best[:2]:
                best = (distance, side, owner)
    assert best is not None
    return best[2]


@settings(max_examples=200)
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=5),
    st.integers(0, MASK32),
)
def test_a_hash_goes_to_the_server_of_the_closest_point(weights: list[int], h: int) -> None:
    servers = [(f"s{i}", w) for i, w in enumerate(weights)]
    point_keys = PointKeys()
    ring = Ring(servers, point_keys)
    points = [(k, i) for i, (name, w) in enumerate(servers) for k in point_keys.of(name, w * 16)]
    assert ring.order_for_hash(h)[0] == brute_force_owner(points, h)


def test_a_hash_on_a_point_goes_to_that_points_server() -> None:
    point_keys = PointKeys()
    ring = Ring([("a", 1), ("b", 1)], point_keys)
    for key in point_keys.of("b", 16):
        assert ring.order_for_hash(key)[0] == 1
