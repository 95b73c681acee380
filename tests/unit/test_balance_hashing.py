"""``balance source | uri | url_param | hdr(<name>)`` on ``hash-type map-based``: the key HAProxy
takes from the request, the server it lands on, and the round-robin fallback when the key is
missing ("If no value is found or if the parameter is not found, then a round robin algorithm
is applied")."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest

from geoproxy.balance.hashfuncs import djb2, sdbm
from geoproxy.balance.hashing import (
    HashPolicy,
    HeaderHash,
    SourceHash,
    UriHash,
    UrlParamHash,
    first_value,
    main_domain,
    source_key,
    uri_key,
    url_param_value,
)
from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.rank import decide
from geoproxy.balance.roundrobin import StaticRoundRobin
from geoproxy.balance.view import ServerView
from geoproxy.config.model import HashType

WEIGHTS = {"s0": 5, "s1": 1, "s2": 2}
FARM = tuple(ServerView(name, i, w) for i, (name, w) in enumerate(WEIGHTS.items()))


def request(uri: str = "/", source: str = "127.0.0.1", **headers: str) -> RequestKeys:
    lowered = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return RequestKeys(source, uri, lowered.get)


def map_policy(key_hash: Callable[[RequestKeys], int | None]) -> HashPolicy:
    return HashPolicy(key_hash, HashType.MAP_BASED, WEIGHTS)


def pick(
    policy: HashPolicy, req: RequestKeys | None, eligible: tuple[ServerView, ...] = FARM
) -> str:
    return policy.rank(eligible, req).candidates[0].name


# --------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(
    ("uri", "length", "depth", "whole", "key"),
    [
        ("/a/b/c/d", 0, 0, False, "/a/b/c/d"),
        ("/a/b?x=1", 0, 0, False, "/a/b"),
        ("/a/b?x=1", 0, 0, True, "/a/b?x=1"),
        ("/a/b/c/d", 0, 2, False, "/a/b"),
        ("/a/b/c/d", 0, 1, False, "/a"),
        ("/a/b/", 0, 2, False, "/a/b"),
        ("/a", 0, 1, False, "/a"),
        ("/a/b/c", 0, 5, False, "/a/b/c"),
        ("/a/b/c/d", 4, 0, False, "/a/b"),
        ("/abcdef?x", 3, 0, False, "/ab"),
        ("/a/b/c/d", 6, 1, False, "/a"),
        ("/a/b/c/d", 3, 2, False, "/a/"),
        ("/a?b/c/d", 0, 2, False, "/a"),
        ("/a?b/c/d", 0, 2, True, "/a?b/c"),
        ("http://h/a/b", 0, 1, False, "http:/"),
        ("", 0, 0, False, ""),
        ("?q", 0, 0, False, ""),
    ],
)
def test_uri_key_cuts_as_balance_uri_len_depth_whole(
    uri: str, length: int, depth: int, whole: bool, key: str
) -> None:
    assert uri_key(uri.encode(), length, depth, whole) == key.encode()


@pytest.mark.parametrize(
    ("uri", "value"),
    [
        ("/?uid=alice", "alice"),
        ("/x?a=1&uid=bob", "bob"),
        ("/x?uid=carol&a=1", "carol"),
        ("/p?uid=", ""),
        ("/p?xuid=1&uid=dave", "dave"),
        ("/p?uid=1&uid=2", "1"),
        ("/p?uid=a=b", "a=b"),
        ("/p?xuid=1", None),
        ("/p/uid=1", None),
        ("/p?uid", None),
        ("/p?UID=1", None),
        ("/p?a=1;uid=2", None),
        ("/p?", None),
    ],
)
def test_url_param_value_finds_the_first_exact_parameter(uri: str, value: str | None) -> None:
    assert url_param_value(uri, "uid") == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("alice", "alice"),
        ("  carol  ", "carol"),
        ("bob, carol", "bob"),
        ("  erin  , zed", "erin"),
        ('"erin, y"', '"erin, y"'),
        ('"a\\", b", c', '"a\\", b"'),
        (", b", ""),
        ("", ""),
        ("\t x \t", "x"),
    ],
)
def test_first_value_is_what_haproxys_header_lookup_returns(raw: str, value: str) -> None:
    assert first_value(raw) == value


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("haproxy.1wt.eu", "1wt"),
        ("www.example.com", "example"),
        ("example.org", "example"),
        ("a.b.c.d.org", "d"),
        ("shop.example.co.uk:8080", "co"),
        ("localhost", "localhost"),
        (".com", ".com"),
        ("x..y", "x."),
        ("1wt.", "1wt"),
    ],
)
def test_use_domain_only_keeps_the_label_before_the_last_dot(host: str, domain: str) -> None:
    assert main_domain(host) == domain


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("127.0.0.1", 0x7F000001),
        ("192.168.0.1", 0xC0A80001),
        ("0.0.0.0", 0),
        ("::1", 1),
        ("2001:db8::1", 0x20010DB8 ^ 1),
        ("::ffff:1.2.3.4", 0xFFFF ^ 0x01020304),
        ("fe80::1:2:3:4", 0xFE800000 ^ 0 ^ 0x00010002 ^ 0x00030004),
        ("not-an-ip", None),
        ("", None),
        ("1.2.3", None),
        ("/run/geoproxy.sock", None),
    ],
)
def test_source_key_is_the_address_or_the_xor_of_its_words(address: str, key: int | None) -> None:
    assert source_key(address) == key


# --------------------------------------------------------------------------------------------
# Same picks as HAProxy (observed from haproxy 2.6.12, servers s0, s1, s2 of weights 5, 1, 2)

URIS = [
    "/",
    "/index.html",
    "/img/logo.png",
    "/api/v1/users?id=7",
    "/static/css/site.css",
    "/search?q=haproxy&page=2",
    "/x9",
]


@pytest.mark.parametrize(
    ("key_hash", "expected"),
    [
        (UriHash(sdbm, False, 0, 0, False), ["s2", "s0", "s0", "s0", "s1", "s2", "s0"]),
        (UriHash(sdbm, False, 0, 2, False), ["s2", "s0", "s0", "s2", "s0", "s2", "s0"]),
        (UriHash(djb2, False, 6, 0, True), ["s0", "s0", "s0", "s2", "s0", "s1", "s0"]),
    ],
    ids=["uri", "uri depth 2", "uri len 6 whole djb2"],
)
def test_balance_uri_picks_the_server_haproxy_picks(key_hash: UriHash, expected: list[str]) -> None:
    policy = map_policy(key_hash)
    assert [pick(policy, request(uri)) for uri in URIS] == expected


def test_balance_url_param_picks_the_server_haproxy_picks() -> None:
    policy = map_policy(UrlParamHash(sdbm, False, "uid"))
    uris = ["/?uid=alice", "/x?a=1&uid=bob", "/p?uid=", "/p?uid=4711", "/p?xuid=1&uid=dave"]
    assert [pick(policy, request(u)) for u in uris] == ["s0", "s0", "s0", "s2", "s0"]


def test_balance_hdr_hashes_the_first_value_as_haproxy_does() -> None:
    policy = map_policy(HeaderHash(sdbm, False, "X-User", False))
    values = ["erin", "erin, y", '"erin, y"', "  erin  , zed", "bob, x", "bob"]
    picked = [pick(policy, request(x_user=v)) for v in values]
    assert picked == ["s1", "s1", "s0", "s1", "s0", "s0"]


def test_balance_hdr_use_domain_only_picks_the_server_haproxy_picks() -> None:
    policy = map_policy(HeaderHash(sdbm, False, "host", True))
    hosts = ["haproxy.1wt.eu", "www.1wt.eu", "www.example.com", "example.org", "localhost"]
    assert [pick(policy, request(host=h)) for h in hosts] == ["s0", "s0", "s1", "s1", "s2"]


@pytest.mark.parametrize(
    ("avalanche", "expected"),
    [(False, ["s0", "s1", "s2", "s0", "s0", "s0"]), (True, ["s2", "s2", "s1", "s2", "s2", "s0"])],
)
def test_balance_source_picks_the_server_haproxy_picks(
    avalanche: bool, expected: list[str]
) -> None:
    policy = map_policy(SourceHash(avalanche))
    sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.10.20.30", "127.200.1.9"]
    sources.append("127.255.255.254")
    assert [pick(policy, request(source=s)) for s in sources] == expected


# --------------------------------------------------------------------------------------------
# Behaviour of map-based hashing


def random_uris(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["img", "api", "doc", "static", "v1", "users"]
    return [f"/{rng.choice(words)}/{rng.randrange(10**6)}" for _ in range(count)]


def test_the_same_key_always_reaches_the_same_server() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    uris = random_uris(300, seed=1)
    first = [pick(policy, request(u)) for u in uris]
    for _ in range(3):
        assert [pick(policy, request(u)) for u in reversed(uris)] == first[::-1]


def test_map_based_hashing_spreads_keys_by_weight() -> None:
    weights = {"a": 1, "b": 2, "c": 3}
    farm = tuple(ServerView(n, i, w) for i, (n, w) in enumerate(weights.items()))
    policy = HashPolicy(UriHash(sdbm, True, 0, 0, False), HashType.MAP_BASED, weights)
    counts = Counter(pick(policy, request(u), farm) for u in random_uris(6000, seed=2))
    for name, expected in (("a", 1000), ("b", 2000), ("c", 3000)):
        assert counts[name] == pytest.approx(expected, rel=0.07)


def test_map_based_hashing_moves_most_keys_when_a_server_goes_down() -> None:
    weights = {"a": 1, "b": 1, "c": 1, "d": 1}
    farm = tuple(ServerView(n, i, 1) for i, n in enumerate(weights))
    policy = HashPolicy(UriHash(sdbm, True, 0, 0, False), HashType.MAP_BASED, weights)
    uris = random_uris(2000, seed=3)
    before = [pick(policy, request(u), farm) for u in uris]
    after = [pick(policy, request(u), farm[:3]) for u in uris]
    assert "d" not in after
    moved = sum(b != a for b, a in zip(before, after, strict=True))
    # the map shrinks from 4 to 3 slots: a key keeps its server only if h % 4 == h % 3
    assert moved / len(uris) > 0.6


def test_map_based_hashing_ignores_weights_changed_at_run_time() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    uris = random_uris(500, seed=4)
    before = [pick(policy, request(u)) for u in uris]
    reweighted = tuple(replace(s, weight=50) for s in FARM)
    assert [pick(policy, request(u), reweighted) for u in uris] == before


def test_a_hashed_ranking_holds_the_server_then_the_rest_of_the_map() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    ranking = policy.rank(FARM, request("/static/css/site.css"))
    assert ranking.mode is PickMode.FIRST_WITH_ROOM
    # slot of s1 in the map a a b c a a a c: the walk meets c, then a
    assert [s.name for s in ranking.candidates] == ["s1", "s2", "s0"]


def test_a_full_hashed_server_hands_the_request_to_the_next_in_the_map() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    farm = (FARM[0], replace(FARM[1], inflight=3, maxconn=3), FARM[2])
    chosen = decide(policy.rank(farm, request("/static/css/site.css")))
    assert chosen is not None and chosen.name == "s2"


def test_hashed_rankings_hold_the_calls_own_views() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    policy.rank(FARM, request("/x"))
    busy = tuple(replace(s, inflight=6) for s in FARM)
    assert all(s.inflight == 6 for s in policy.rank(busy, request("/x")).candidates)


# --------------------------------------------------------------------------------------------
# Fallback to round robin


def static_rr_sequence(count: int) -> list[str]:
    policy = StaticRoundRobin(WEIGHTS)
    return [policy.rank(FARM, None).candidates[0].name for _ in range(count)]


@pytest.mark.parametrize(
    ("key_hash", "keyless"),
    [
        (UrlParamHash(sdbm, False, "uid"), request("/page?other=1")),
        (UrlParamHash(sdbm, False, "uid"), request("/page")),
        (HeaderHash(sdbm, False, "x-user", False), request("/")),
        (HeaderHash(sdbm, False, "x-user", False), request("/", x_user="")),
        (HeaderHash(sdbm, False, "x-user", False), request("/", x_user=" , b")),
        (SourceHash(False), request(source="unix-socket")),
    ],
    ids=["param-absent", "no-query", "header-absent", "header-empty", "empty-first", "no-ip"],
)
def test_a_missing_key_falls_back_to_round_robin_on_the_map(
    key_hash: Callable[[RequestKeys], int | None], keyless: RequestKeys
) -> None:
    policy = map_policy(key_hash)
    assert [pick(policy, keyless) for _ in range(16)] == static_rr_sequence(16)


def test_keyed_requests_do_not_advance_the_round_robin() -> None:
    policy = map_policy(UrlParamHash(sdbm, False, "uid"))
    picked = []
    for i in range(16):
        pick(policy, request(f"/?uid=user{i}"))
        picked.append(pick(policy, request("/")))
    assert picked == static_rr_sequence(16)


def test_no_request_keys_falls_back_to_round_robin() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    assert [pick(policy, None) for _ in range(8)] == static_rr_sequence(8)


def test_hashing_policies_need_the_request() -> None:
    assert map_policy(SourceHash(False)).needs_request is True


def test_header_hash_looks_the_name_up_in_lower_case() -> None:
    asked: list[str] = []

    def header(name: str) -> str | None:
        asked.append(name)
        return "v"

    HeaderHash(sdbm, False, "X-User", False)(RequestKeys("", "/", header))
    assert asked == ["x-user"]


def test_repeated_keys_keep_their_server_past_the_memo_limit() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    expected = pick(policy, request("/keep"))
    for uri in random_uris(5000, seed=5):
        pick(policy, request(uri))
    assert pick(policy, request("/keep")) == expected


def ranking_names(ranking: Ranking) -> list[str]:
    return [s.name for s in ranking.candidates]


def test_every_hashed_ranking_is_a_permutation_of_the_eligible_servers() -> None:
    policy = map_policy(UriHash(sdbm, False, 0, 0, False))
    for uri in random_uris(200, seed=6):
        assert sorted(ranking_names(policy.rank(FARM, request(uri)))) == ["s0", "s1", "s2"]
