"""HAProxy's hash functions (``hash-type <method> <function> [avalanche]``), 32-bit.

Rules:
1. Each function is a port of HAProxy's ``src/hash.c``: same input bytes, same 32-bit result,
   so a key hashes here to the value HAProxy computes for it.
2. Inputs are bytes. Request text reaches us as WSGI strings, which are the request's bytes
   decoded as latin-1 (PEP 3333); ``octets`` undoes that without loss.
3. ``full_hash`` is the "avalanche" modifier (Bob Jenkins' 32-bit integer hash, then a multiply
   by a large prime, as HAProxy's ``full_hash``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from geoproxy.config.model import HashFunction

MASK32 = 0xFFFFFFFF

HashFn = Callable[[bytes], int]


def sdbm(data: bytes) -> int:
    """``hash = c + (hash << 6) + (hash << 16) - hash``, i.e. ``hash * 65599 + c``."""
    h = 0
    for c in data:
        h = (h * 65599 + c) & MASK32
    return h


def djb2(data: bytes) -> int:
    """Dan Bernstein's ``hash * 33 + c`` from 5381."""
    h = 5381
    for c in data:
        h = (h * 33 + c) & MASK32
    return h


def wt6(data: bytes) -> int:
    """HAProxy's own two-lane rotating hash."""
    h0, h1 = 0xA53C965A, 0x5CA6953A
    step0, step1 = 6, 18
    for c in data:
        h0 = ~(h0 ^ c) & MASK32
        h1 = ~(h1 + c) & MASK32
        # A rotation by 0 shifts by 32 in C; both readings give the value unchanged.
        t = ((h1 << step0) | (h1 >> (32 - step0))) & MASK32
        h1 = ((h0 << step1) | (h0 >> (32 - step1))) & MASK32
        h0 = t
        t = ((h0 >> 16) ^ h1) & 0xFFFF
        step0 = t & 0x1F
        step1 = t >> 11
    return h0 ^ h1


def crc32(data: bytes) -> int:
    """The Ethernet/gzip CRC32 (HAProxy's bitwise loop computes exactly zlib's)."""
    return zlib.crc32(data) & MASK32


def full_hash(a: int) -> int:
    """The ``avalanche`` modifier: mixes a 32-bit value into another 32-bit value."""
    a = (a + 0x7ED55D16 + (a << 12)) & MASK32
    a = (a ^ 0xC761C23C ^ (a >> 19)) & MASK32
    a = (a + 0x165667B1 + (a << 5)) & MASK32
    a = ((a + 0xD3A2646C) ^ (a << 9)) & MASK32
    a = (a + 0xFD7046C5 + (a << 3)) & MASK32
    a = (a ^ 0xB55A4F09 ^ (a >> 16)) & MASK32
    return (a * 3221225473) & MASK32


HASH_FUNCTIONS: dict[HashFunction, HashFn] = {
    HashFunction.SDBM: sdbm,
    HashFunction.DJB2: djb2,
    HashFunction.WT6: wt6,
    HashFunction.CRC32: crc32,
}


def octets(text: str) -> bytes:
    """The bytes a WSGI string stands for (latin-1); other text is taken as UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
