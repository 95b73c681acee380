"""Integer ACL patterns (manual section 7.1.2): ``443``, ``1024:65535``, ``:1023``, ``1024:``,
and an operator word that applies to the pattern after it: ``eq``, ``ge``, ``gt``, ``le``, ``lt``
(``req.len gt 0``). Pure: parsed once at load time, matched per connection.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_OPERATORS = ("eq", "ge", "gt", "le", "lt")
_RANGE = re.compile(r"(-?\d*)(?::(-?\d*))?")


class IntPatternError(Exception):
    """A pattern that is not an integer, a range or an operator followed by an integer."""


@dataclass(frozen=True, slots=True)
class IntRange:
    """An inclusive range; None is unbounded on that side."""

    low: int | None
    high: int | None

    def holds(self, value: int) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def parse_int_patterns(patterns: Sequence[str]) -> tuple[IntRange, ...]:
    """The ranges of an ACL's integer patterns (ORed). Raises ``IntPatternError``."""
    ranges: list[IntRange] = []
    operator = ""
    for pattern in patterns:
        if pattern in _OPERATORS and not operator:
            operator = pattern
            continue
        ranges.append(_one(pattern, operator))
        operator = ""
    if operator:
        raise IntPatternError(f"missing value after operator '{operator}'")
    return tuple(ranges)


def _one(pattern: str, operator: str) -> IntRange:
    match = _RANGE.fullmatch(pattern)
    if match is None or (not match.group(1) and not match.group(2)):
        raise IntPatternError(f"'{pattern}' is not a number")
    low = int(match.group(1)) if match.group(1) else None
    if match.group(2) is None:  # no colon: one value
        if low is None:
            raise IntPatternError(f"'{pattern}' is not a number")
        if operator and operator != "eq":
            if operator in ("ge", "gt"):
                return IntRange(low + (operator == "gt"), None)
            return IntRange(None, low - (operator == "lt"))
        return IntRange(low, low)
    if operator:
        raise IntPatternError(f"operator '{operator}' cannot be followed by a range")
    high = int(match.group(2)) if match.group(2) else None
    return IntRange(low, high)


def matches(value: int, ranges: Sequence[IntRange]) -> bool:
    return any(r.holds(value) for r in ranges)
