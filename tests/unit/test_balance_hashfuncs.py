"""The hash functions of ``hash-type <method> <function> [avalanche]`` give HAProxy's values.

The expected values were computed by HAProxy's own ``src/hash.c`` functions and
``full_hash`` (``include/haproxy/tools.h``), compiled with gcc.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoproxy.balance.hashfuncs import (
    HASH_FUNCTIONS,
    MASK32,
    crc32,
    djb2,
    full_hash,
    octets,
    sdbm,
    wt6,
)
from geoproxy.config.model import HashFunction

# key, sdbm, djb2, wt6, crc32
VECTORS = [
    (b"", 0x00000000, 0x00001505, 0xF99A0360, 0x00000000),
    (b"a", 0x00000061, 0x0002B606, 0x714BF225, 0xE8B7BE43),
    (b"/", 0x0000002F, 0x0002B5D4, 0x7073CEA5, 0x79D3D2D4),
    (b"/index.html", 0x33242976, 0xE114B9CF, 0x3101077E, 0xEA224B42),
    (b"haproxy.1wt.eu", 0xD5016DC9, 0x55369522, 0x50A60C3A, 0x12EBD928),
    (b"user-4711", 0x999F9125, 0xBC80A3DE, 0xBB87A161, 0x1139BB11),
    (b"/static/img/logo.png?v=3", 0xA8F5F2F1, 0xBE037C00, 0x62E2B472, 0x19B71834),
    (b"\xff\x80latin", 0xED497F83, 0xE36FF4BC, 0xEE192271, 0x837FD781),
    (
        b"The quick brown fox jumps over the lazy dog",
        0x8CA77173,
        0x34CC38DE,
        0xE4E7B045,
        0x414FA339,
    ),
]

FULL_HASH_VECTORS = [
    (0x00000000, 0xAB4ED927),
    (0x00000001, 0x348681B6),
    (0x00000002, 0xE267B84C),
    (0x7F000001, 0x8A1B584B),
    (0xC0A80001, 0xCB63C81E),
    (0xFFFFFFFF, 0x7E64C182),
    (0x075BCD15, 0x99AB9E21),
]

IDS = [repr(v[0])[:20] for v in VECTORS]


@pytest.mark.parametrize(("key", "expected", "_d", "_w", "_c"), VECTORS, ids=IDS)
def test_sdbm_gives_haproxys_value(key: bytes, expected: int, _d: int, _w: int, _c: int) -> None:
    assert sdbm(key) == expected


@pytest.mark.parametrize(("key", "_s", "expected", "_w", "_c"), VECTORS, ids=IDS)
def test_djb2_gives_haproxys_value(key: bytes, _s: int, expected: int, _w: int, _c: int) -> None:
    assert djb2(key) == expected


@pytest.mark.parametrize(("key", "_s", "_d", "expected", "_c"), VECTORS, ids=IDS)
def test_wt6_gives_haproxys_value(key: bytes, _s: int, _d: int, expected: int, _c: int) -> None:
    assert wt6(key) == expected


@pytest.mark.parametrize(("key", "_s", "_d", "_w", "expected"), VECTORS, ids=IDS)
def test_crc32_gives_haproxys_value(key: bytes, _s: int, _d: int, _w: int, expected: int) -> None:
    assert crc32(key) == expected


@pytest.mark.parametrize(("value", "expected"), FULL_HASH_VECTORS)
def test_avalanche_gives_haproxys_full_hash(value: int, expected: int) -> None:
    assert full_hash(value) == expected


def test_crc32_is_the_standard_check_value() -> None:
    assert crc32(b"123456789") == 0xCBF43926


def test_every_configurable_function_has_an_implementation() -> None:
    assert set(HASH_FUNCTIONS) == set(HashFunction)


@given(st.binary(max_size=64))
def test_every_function_returns_a_32_bit_value(data: bytes) -> None:
    for function in HASH_FUNCTIONS.values():
        assert 0 <= function(data) <= MASK32


@given(st.binary(max_size=64))
def test_sdbm_is_the_shift_formula_of_hash_c(data: bytes) -> None:
    h = 0
    for c in data:
        h = (c + (h << 6) + (h << 16) - h) & MASK32
    assert sdbm(data) == h


@given(st.binary(max_size=64))
def test_crc32_matches_zlib(data: bytes) -> None:
    assert crc32(data) == zlib.crc32(data)


@given(st.integers(0, MASK32))
def test_avalanche_stays_within_32_bits(value: int) -> None:
    assert 0 <= full_hash(value) <= MASK32


def test_avalanche_spreads_consecutive_inputs() -> None:
    outputs = {full_hash(i) >> 28 for i in range(64)}
    assert len(outputs) >= 12


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/index.html", b"/index.html"),
        ("caf\xe9", b"caf\xe9"),  # WSGI strings are latin-1 decoded bytes
        ("\xff\x80", b"\xff\x80"),
        ("\u20ac", "\u20ac".encode()),  # not WSGI text: taken as UTF-8
    ],
)
def test_octets_recovers_the_request_bytes(text: str, expected: bytes) -> None:
    assert octets(text) == expected
