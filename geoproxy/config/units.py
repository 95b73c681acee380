"""HAProxy's time and size formats.

Rules:
1. A time is digits followed by an optional unit: ``us``, ``ms``, ``s``, ``m``, ``h``, ``d``. A
   bare number is in the keyword's default unit: milliseconds for timeouts and check intervals,
   seconds for ``cookie maxidle``/``maxlife`` (HAProxy's ``TIME_UNIT_MS`` / ``TIME_UNIT_S``).
   Results are seconds as ``float``.
2. No sign, no decimal point, no spaces: HAProxy refuses them ("unexpected character").
3. A time above HAProxy's 32-bit limit (2147483647 in the default unit) is an overflow error.
4. A size is digits followed by an optional ``k``, ``m`` or ``g`` (either case; powers of 1024).
5. Errors are ``UnitError``; ``describe(what)`` phrases them the way HAProxy does, naming the
   keyword the value was given to.
"""

from __future__ import annotations

import enum
import re

_TIME = re.compile(r"(\d+)(us|ms|s|m|h|d)?")
_SIZE = re.compile(r"(\d+)([kKmMgG])?")
_LEADING_DIGITS = re.compile(r"\d*")

# Integer microseconds per unit, so that the overflow check is exact.
_MICROSECONDS = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
}
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

# HAProxy stores timers in a signed 32-bit integer of the default unit.
TIMER_MAX = 2147483647


class TimeUnit(enum.Enum):
    """The unit of a bare number (HAProxy's TIME_UNIT_MS and TIME_UNIT_S)."""

    MS = "ms"
    S = "s"

    @property
    def limit_text(self) -> str:
        return "2147483647 ms or ~24.8 days" if self is TimeUnit.MS else "2147483647 s or ~68 years"


class UnitError(ValueError):
    """A value that is not a valid time or size.

    ``character`` is the first unexpected character (None for an empty value or an overflow);
    ``overflow`` is true when the value is well-formed but too large.
    """

    def __init__(self, text: str, character: str | None, overflow: bool = False,
                 limit: str = "") -> None:
        self.text = text
        self.character = character
        self.overflow = overflow
        self.limit = limit
        super().__init__(self.describe("value"))

    def describe(self, what: str) -> str:
        """The error phrased for the keyword ``what`` (e.g. ``timeout client``)."""
        if self.overflow:
            return (f"timer overflow in argument '{self.text}' to '{what}' "
                    f"(maximum value is {self.limit})")
        if self.character is None:
            return f"'{what}' expects a value"
        return f"unexpected character '{self.character}' in '{what}'"


def parse_time(text: str, unit: TimeUnit = TimeUnit.MS) -> float:
    """Parse an HAProxy time (``5000``, ``5s``, ``100ms``, ``1m``) into seconds.

    ``unit`` is the unit of a bare number. Raises ``UnitError``.
    """
    match = _TIME.fullmatch(text)
    if match is None:
        raise UnitError(text, _first_bad_character(text, allowed_suffixes=True))
    number, suffix = int(match.group(1)), match.group(2) or unit.value
    microseconds = number * _MICROSECONDS[suffix]
    if microseconds > TIMER_MAX * _MICROSECONDS[unit.value]:
        raise UnitError(text, None, overflow=True, limit=unit.limit_text)
    return microseconds / 1_000_000


def parse_size(text: str) -> int:
    """Parse an HAProxy size (``100``, ``200k``, ``1m``, ``2g``) into an integer. Raises
    ``UnitError``."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise UnitError(text, _first_bad_character(text, allowed_suffixes=False))
    suffix = (match.group(2) or "").lower()
    return int(match.group(1)) * _SIZE_FACTORS[suffix]


def _first_bad_character(text: str, allowed_suffixes: bool) -> str | None:
    """The character HAProxy would complain about: the first one after the digits and a
    recognised unit."""
    if not text:
        return None
    digits = _LEADING_DIGITS.match(text)
    position = digits.end() if digits else 0
    if position == 0:
        return text[0]
    rest = text[position:]
    if allowed_suffixes:
        for suffix in ("us", "ms", "s", "m", "h", "d"):
            if rest.startswith(suffix):
                return rest[len(suffix)] if len(rest) > len(suffix) else rest[0]
    elif rest[:1].lower() in ("k", "m", "g"):
        return rest[1] if len(rest) > 1 else rest[0]
    return rest[0]
