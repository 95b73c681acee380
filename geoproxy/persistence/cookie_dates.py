"""HAProxy's date encoding for insert-mode cookies (``SRV|LASTSEEN|FIRSTSEEN``).

Rules:
1. A date is a count of 4-second units since the epoch, kept to its lower 30 bits and written
   as 5 characters of the base64 alphabet, most significant first, without padding
   (HAProxy's ``s30tob64`` / ``b64tos30``).
2. Writing rounds up: the unit written for ``now`` is ``(now + 3) >> 2``, so a date written at
   ``now`` reads back as a moment at or after ``now``.
3. Reading yields seconds (the unit shifted left by 2). Any character outside the alphabet, the
   padding ``=`` included, makes the date unreadable (``None``); so does a unit of 0, which
   HAProxy treats as "no date".
"""

from __future__ import annotations

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_VALUES = {char: index for index, char in enumerate(ALPHABET)}
DATE_LENGTH = 5


def encode_units(units: int) -> str:
    """The 5-character form of the lower 30 bits of ``units`` (4-second units)."""
    return "".join(ALPHABET[(units >> shift) & 0x3F] for shift in (24, 18, 12, 6, 0))


def encode_date(now: int) -> str:
    """The 5-character form of the date ``now`` (seconds since the epoch), rounded up."""
    return encode_units((now + 3) >> 2)


def decode_date(text: str) -> int | None:
    """Seconds since the epoch read from the first 5 characters of ``text``, or None when they
    are fewer than 5, hold a character outside the alphabet, or encode 0."""
    if len(text) < DATE_LENGTH:
        return None
    units = 0
    for char in text[:DATE_LENGTH]:
        value = _VALUES.get(char)
        if value is None:
            return None
        units = (units << 6) | value
    return units << 2 if units > 0 else None
