"""XXH64, the 64-bit xxHash, in pure Python: HAProxy derives dynamic cookies with it.

Only short inputs are hashed here (a key, an address and a port, once per server at start-up),
so clarity wins over speed. Checked against the reference vectors of the xxHash project.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _MASK, 31) * _P1) & _MASK


def _merge(acc: int, lane: int) -> int:
    return (((acc ^ _round(0, lane)) * _P1) + _P4) & _MASK


def _stripes(data: bytes, seed: int) -> tuple[int, int]:
    """Hash every whole 32-byte stripe; return the accumulator and the bytes consumed."""
    lanes = [(seed + _P1 + _P2) & _MASK, (seed + _P2) & _MASK, seed, (seed - _P1) & _MASK]
    end = len(data) - len(data) % 32
    for offset in range(0, end, 32):
        for index in range(4):
            start = offset + index * 8
            lanes[index] = _round(lanes[index], int.from_bytes(data[start : start + 8], "little"))
    acc = _rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)
    acc &= _MASK
    for lane in lanes:
        acc = _merge(acc, lane)
    return acc, end


def xxh64(data: bytes, seed: int = 0) -> int:
    """The XXH64 digest of ``data`` with ``seed``, as an unsigned 64-bit integer."""
    if len(data) >= 32:
        acc, offset = _stripes(data, seed)
    else:
        acc, offset = (seed + _P5) & _MASK, 0
    acc = (acc + len(data)) & _MASK
    while offset + 8 <= len(data):
        acc ^= _round(0, int.from_bytes(data[offset : offset + 8], "little"))
        acc = (_rotl(acc, 27) * _P1 + _P4) & _MASK
        offset += 8
    if offset + 4 <= len(data):
        acc ^= (int.from_bytes(data[offset : offset + 4], "little") * _P1) & _MASK
        acc = (_rotl(acc, 23) * _P2 + _P3) & _MASK
        offset += 4
    for byte in data[offset:]:
        acc ^= (byte * _P5) & _MASK
        acc = (_rotl(acc, 11) * _P1) & _MASK
    acc ^= acc >> 33
    acc = (acc * _P2) & _MASK
    acc ^= acc >> 29
    acc = (acc * _P3) & _MASK
    acc ^= acc >> 32
    return acc
