"""``balance`` and ``hash-type`` select the policy; every policy keeps HAProxy's common rules
(weight 0 and unusable servers never get a new request, backups only without primaries)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from geoproxy.balance.factory import policy_for
from geoproxy.balance.first import First
from geoproxy.balance.hashing import HashPolicy
from geoproxy.balance.leastconn import LeastConn
from geoproxy.balance.policy import Policy, RequestKeys
from geoproxy.balance.random import RandomDraws
from geoproxy.balance.rank import decide, eligible
from geoproxy.balance.roundrobin import RoundRobin, StaticRoundRobin
from geoproxy.balance.view import AdminState, BackendView, OperState, ServerView
from geoproxy.config.model import (
    Backend,
    Balance,
    BalanceAlgorithm,
    HashFunction,
    HashSettings,
    HashType,
    Location,
    Server,
)

HERE = Location("test.cfg", 1)


def backend(
    balance: Balance, hash_settings: HashSettings | None = None, weights: tuple[int, ...] = (1, 1)
) -> Backend:
    servers = tuple(
        Server(f"s{i}", "127.0.0.1", 8000 + i, HERE, weight=w) for i, w in enumerate(weights)
    )
    return Backend(
        "be", HERE, servers=servers, balance=balance, hash=hash_settings or HashSettings()
    )


ALL_BALANCES = [
    Balance(BalanceAlgorithm.ROUNDROBIN),
    Balance(BalanceAlgorithm.STATIC_RR),
    Balance(BalanceAlgorithm.LEASTCONN),
    Balance(BalanceAlgorithm.FIRST),
    Balance(BalanceAlgorithm.SOURCE),
    Balance(BalanceAlgorithm.URI),
    Balance(BalanceAlgorithm.URI, uri_len=8, uri_depth=2, uri_whole=True),
    Balance(BalanceAlgorithm.URL_PARAM, param="uid"),
    Balance(BalanceAlgorithm.HDR, param="host", use_domain_only=True),
    Balance(BalanceAlgorithm.RANDOM),
    Balance(BalanceAlgorithm.RANDOM, draws=1),
]
ALL_HASHES = [
    HashSettings(),
    HashSettings(HashType.CONSISTENT, HashFunction.SDBM, True),
    HashSettings(HashType.MAP_BASED, HashFunction.WT6),
    HashSettings(HashType.CONSISTENT, HashFunction.CRC32),
    HashSettings(HashType.MAP_BASED, HashFunction.DJB2, True),
]
CASES = [(b, h) for b in ALL_BALANCES for h in ALL_HASHES]
CASE_IDS = [f"{b.algorithm.value}-{h.method.value}-{h.function.value}" for b, h in CASES]


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [
        (BalanceAlgorithm.ROUNDROBIN, RoundRobin),
        (BalanceAlgorithm.STATIC_RR, StaticRoundRobin),
        (BalanceAlgorithm.LEASTCONN, LeastConn),
        (BalanceAlgorithm.FIRST, First),
        (BalanceAlgorithm.RANDOM, RandomDraws),
        (BalanceAlgorithm.SOURCE, HashPolicy),
        (BalanceAlgorithm.URI, HashPolicy),
    ],
)
def test_the_balance_algorithm_selects_its_family(algorithm: BalanceAlgorithm, kind: type) -> None:
    assert isinstance(policy_for(backend(Balance(algorithm)), random.Random(0)), kind)


def test_roundrobin_is_the_default() -> None:
    assert isinstance(policy_for(Backend("be", HERE), random.Random(0)), RoundRobin)


@pytest.mark.parametrize(
    "balance",
    [
        Balance(BalanceAlgorithm.SOURCE),
        Balance(BalanceAlgorithm.URI),
        Balance(BalanceAlgorithm.URL_PARAM, param="id"),
        Balance(BalanceAlgorithm.HDR, param="host"),
    ],
)
def test_only_hashing_algorithms_need_the_request(balance: Balance) -> None:
    assert policy_for(backend(balance), random.Random(0)).needs_request is True


@pytest.mark.parametrize("algorithm", [BalanceAlgorithm.URL_PARAM, BalanceAlgorithm.HDR])
def test_a_named_key_algorithm_without_a_name_is_refused(algorithm: BalanceAlgorithm) -> None:
    with pytest.raises(ValueError, match="needs a name"):
        policy_for(backend(Balance(algorithm)), random.Random(0))


def test_hdr_name_matches_whatever_its_case_in_the_configuration() -> None:
    policy = policy_for(backend(Balance(BalanceAlgorithm.HDR, param="X-User")), random.Random(0))
    servers = (ServerView("s0", 0, 1), ServerView("s1", 1, 1))
    seen = {
        policy.rank(servers, RequestKeys("", "/", {"x-user": f"u{i}"}.get)).candidates[0].name
        for i in range(40)
    }
    assert seen == {"s0", "s1"}


def test_random_uses_the_configured_draws_and_the_given_rng() -> None:
    be = backend(Balance(BalanceAlgorithm.RANDOM, draws=3), weights=(1,) * 8)
    servers = tuple(ServerView(f"s{i}", i, 1) for i in range(8))
    runs = []
    for _ in range(2):
        policy = policy_for(be, random.Random(9))
        runs.append([len(policy.rank(servers, None).candidates) for _ in range(100)])
    assert runs[0] == runs[1]
    assert max(runs[0]) == 3


def test_map_based_hashing_uses_the_configured_weights() -> None:
    be = backend(Balance(BalanceAlgorithm.URI), weights=(1, 3))
    policy = policy_for(be, random.Random(0))
    views = (ServerView("s0", 0, 1), ServerView("s1", 1, 1))  # run-time weights: ignored
    picked = Counter(
        policy.rank(views, RequestKeys("", f"/k{i}", lambda _: None)).candidates[0].name
        for i in range(4000)
    )
    assert picked["s1"] / 4000 == pytest.approx(0.75, abs=0.05)


def test_consistent_hashing_uses_the_current_weights() -> None:
    be = backend(Balance(BalanceAlgorithm.URI), HashSettings(HashType.CONSISTENT, avalanche=True))
    policy = policy_for(be, random.Random(0))
    views = (ServerView("s0", 0, 1), ServerView("s1", 1, 3))
    picked = Counter(
        policy.rank(views, RequestKeys("", f"/k{i}", lambda _: None)).candidates[0].name
        for i in range(4000)
    )
    assert picked["s1"] / 4000 == pytest.approx(0.75, abs=0.1)


# --------------------------------------------------------------------------------------------
# Rules every policy keeps


def view_with_unusable_servers() -> BackendView:
    return BackendView(
        "be",
        (
            ServerView("ok1", 0, 1),
            ServerView("zero", 1, 0),
            ServerView("down", 2, 1, oper=OperState.DOWN),
            ServerView("rising", 3, 1, oper=OperState.GOING_UP),
            ServerView("drain", 4, 1, admin=AdminState.DRAIN),
            ServerView("maint", 5, 1, admin=AdminState.MAINT),
            ServerView("ok2", 6, 2),
            ServerView("backup", 7, 1, backup=True),
        ),
    )


def requests(count: int) -> list[RequestKeys]:
    rng = random.Random(11)
    out = []
    for i in range(count):
        headers = {"host": f"h{rng.randrange(50)}.example.com"} if i % 4 else {}
        uri = f"/p/{rng.randrange(1000)}" + (f"?uid={rng.randrange(99)}" if i % 3 else "")
        source = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
        out.append(RequestKeys(source, uri, headers.get))
    return out


def chosen_names(policy: Policy, view: BackendView, allbackups: bool, count: int) -> Counter[str]:
    """Places ``count`` requests that never end, counting them in the views as they go."""
    counts: Counter[str] = Counter()
    for req in requests(count):
        servers = tuple(replace(s, inflight=counts[s.name]) for s in eligible(view, allbackups))
        chosen = decide(policy.rank(servers, req if policy.needs_request else None))
        assert chosen is not None
        counts[chosen.name] += 1
    return counts


@pytest.mark.parametrize(("balance", "hash_settings"), CASES, ids=CASE_IDS)
def test_no_policy_gives_a_new_request_to_an_unusable_or_weight_zero_server(
    balance: Balance, hash_settings: HashSettings
) -> None:
    view = view_with_unusable_servers()
    weights = tuple(max(s.weight, 1) for s in view.servers)
    be = backend(balance, hash_settings, weights)
    be = replace(
        be,
        servers=tuple(
            replace(s, name=v.name) for s, v in zip(be.servers, view.servers, strict=True)
        ),
    )
    counts = chosen_names(policy_for(be, random.Random(1)), view, False, 300)
    assert set(counts) <= {"ok1", "ok2"}
    if balance.algorithm is not BalanceAlgorithm.FIRST:
        assert set(counts) == {"ok1", "ok2"}


@pytest.mark.parametrize(("balance", "hash_settings"), CASES, ids=CASE_IDS)
def test_every_policy_falls_back_to_the_first_backup_only_without_primaries(
    balance: Balance, hash_settings: HashSettings
) -> None:
    view = BackendView(
        "be",
        (
            ServerView("p", 0, 1, oper=OperState.DOWN),
            ServerView("b1", 1, 1, backup=True),
            ServerView("b2", 2, 1, backup=True),
        ),
    )
    be = backend(balance, hash_settings, (1, 1, 1))
    be = replace(
        be,
        servers=tuple(
            replace(s, name=v.name) for s, v in zip(be.servers, view.servers, strict=True)
        ),
    )
    assert set(chosen_names(policy_for(be, random.Random(2)), view, False, 100)) == {"b1"}
    all_backups = set(chosen_names(policy_for(be, random.Random(2)), view, True, 200))
    assert all_backups <= {"b1", "b2"}
    if balance.algorithm is not BalanceAlgorithm.FIRST:
        assert all_backups == {"b1", "b2"}


@pytest.mark.parametrize(("balance", "hash_settings"), CASES, ids=CASE_IDS)
def test_every_policy_ranks_a_non_empty_subset_of_the_eligible_views(
    balance: Balance, hash_settings: HashSettings
) -> None:
    be = backend(balance, hash_settings, (1, 2, 3))
    servers = tuple(ServerView(f"s{i}", i, w, inflight=i) for i, w in enumerate((1, 2, 3)))
    policy = policy_for(be, random.Random(3))
    for req in requests(60):
        ranking = policy.rank(servers, req)
        assert ranking.candidates
        assert all(any(c is s for s in servers) for c in ranking.candidates)
        assert len({c.name for c in ranking.candidates}) == len(ranking.candidates)
