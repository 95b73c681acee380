"""HAProxy's cookie date encoding, the pure XXH64 and dynamic server ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoproxy.config.model import Backend, CookieMode, CookiePolicy, Location, Server
from geoproxy.persistence.cookie_dates import decode_date, encode_date, encode_units
from geoproxy.persistence.dynamic import dynamic_cookie, server_cookie
from geoproxy.persistence.xxh64 import xxh64

HERE = Location("test", 1)


def test_dates_match_what_haproxy_wrote() -> None:
    # recorded: haproxy 2.6 inserted SRV=s1|awbow at 1795614910 (tests/unit/cases/cookies)
    assert encode_date(1795614910) == "awbow"
    assert decode_date("awbow") == ((1795614910 + 3) >> 2) << 2


@given(st.integers(min_value=4, max_value=(1 << 32) - 5))
def test_a_written_date_reads_back_at_or_just_after_it(now: int) -> None:
    back = decode_date(encode_date(now))
    assert back is not None and 0 <= back - now < 4


def test_unreadable_dates_are_none() -> None:
    assert decode_date("AAAA") is None
    assert decode_date("AAAA=") is None
    assert decode_date("*****") is None
    assert decode_date("AAAAA") is None  # 0 means "no date"
    assert encode_units(0) == "AAAAA"


@pytest.mark.parametrize(
    ("data", "seed", "digest"),
    [
        (b"", 0, 0xEF46DB3751D8E999),
        (b"a", 0, 0xD24EC4F1A98C6E5B),
        (b"abc", 0, 0x44BC2CF5AD770999),
        (b"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1),
    ],
)
def test_xxh64_matches_the_reference_vectors(data: bytes, seed: int, digest: int) -> None:
    assert xxh64(data, seed) == digest


def test_dynamic_ids_match_what_haproxy_inserted() -> None:
    # recorded: 'cookie SRV insert dynamic', dynamic-cookie-key s3cr3t (cases/cookies/dynamic)
    assert dynamic_cookie("s3cr3t", "127.0.0.1", 38691) == "61155c4810af393e"
    assert len(dynamic_cookie("k", "::1", 80) or "") == 16
    assert dynamic_cookie("k", "backend.example", 80) is None


def test_a_server_with_its_own_cookie_keeps_it_under_dynamic() -> None:
    policy = CookiePolicy("SRV", CookieMode.INSERT, HERE, dynamic=True)
    fixed = Server("a", "10.0.0.1", 80, HERE, cookie="fixed")
    free = Server("b", "10.0.0.2", 80, HERE)
    backend = Backend("be", HERE, (fixed, free), cookie=policy, dynamic_cookie_key="k")
    assert server_cookie(backend, fixed) == "fixed"
    assert server_cookie(backend, free) == dynamic_cookie("k", "10.0.0.2", 80)
    assert server_cookie(Backend("be", HERE, (free,), cookie=policy), free) is None
