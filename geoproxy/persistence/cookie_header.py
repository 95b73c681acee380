"""Cookie and Set-Cookie header values, cut the way HAProxy cuts them.

Rules (HAProxy's ``http_manage_client_side_cookies`` and ``http_extract_cookie_value``):
1. A Cookie header is a list of cookies separated by ``;`` or ``,``. A delimiter inside a
   double-quoted value does not count (a backslash escapes the next character there).
2. A cookie is ``NAME=VALUE``. Spaces and tabs around the name, the ``=`` and the value are not
   part of them; spaces inside a name or a value are.
3. A cookie whose name starts with ``$`` is an RFC 2109 attribute of the cookie before it. A
   cookie without ``=`` (``flag``) is nobody's: kept as it is, never matched by name.
4. When HAProxy rewrites a Cookie header it drops the spaces around ``=`` of every ``NAME=VALUE``
   cookie (not of ``$`` attributes or cookies without ``=``); everything else keeps its bytes.
5. A Set-Cookie header holds one cookie: its first ``NAME=VALUE`` pair, whose value ends at the
   first unquoted ``;`` or ``,``; the rest of the header (attributes) is not parsed.

The split is a list of ``Segment`` values, one per cookie, each keeping the positions HAProxy
keeps, so that callers can rebuild the header byte for byte after removing or editing cookies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from geoproxy.httptext import find_unquoted

SPHT = " \t"


@dataclass(frozen=True, slots=True)
class Segment:
    """One cookie of a Cookie header: ``raw`` is ``text[start:end]``, preceded by the delimiter
    at ``start - 1`` (none for the first). ``name``/``value`` are stripped; ``has_equal`` is
    False for a bare word; ``lead``/``trail`` are the spaces before the name and after the
    value."""

    start: int
    end: int
    raw: str
    name: str
    value: str
    has_equal: bool
    lead: str
    trail: str

    @property
    def is_attribute(self) -> bool:
        """An RFC 2109 ``$Attribute`` of the cookie before it."""
        return self.name.startswith("$")

    @property
    def is_cookie(self) -> bool:
        """A ``NAME=VALUE`` cookie that may be matched by name (rule 3)."""
        return self.has_equal and not self.is_attribute

    def normalised(self, value: str | None = None) -> str:
        """The cookie as HAProxy writes it back (rule 4), with ``value`` replacing its own."""
        if not self.is_cookie:
            return self.raw
        return f"{self.lead}{self.name}={self.value if value is None else value}{self.trail}"


def value_end(text: str, start: int, end: int) -> int:
    """The index of the first unquoted ``;`` or ``,`` in ``text[start:end]``, else ``end``."""
    return find_unquoted(text, ";,", start, end)


def _name_end(text: str, start: int, end: int, stops: str) -> tuple[int, int]:
    """Scan a name from ``start``: return (end of the name without trailing spaces, index of
    the ``=`` or delimiter that stopped the scan, or ``end``)."""
    att_end = index = start
    while index < end:
        char = text[index]
        if char in stops:
            break
        index += 1
        if char not in SPHT:
            att_end = index
    return att_end, index


def segments(text: str) -> Iterator[Segment]:
    """Every cookie of the Cookie header value ``text``, in order (rules 1-3)."""
    end = len(text)
    prev = 0
    first = True
    while prev < end:
        start = prev if first else prev + 1
        first = False
        att_beg = start
        while att_beg < end and text[att_beg] in SPHT:
            att_beg += 1
        att_end, equal = _name_end(text, att_beg, end, "=,;")
        if equal < end and text[equal] == "=":
            val_beg = equal + 1
            while val_beg < end and text[val_beg] in SPHT:
                val_beg += 1
            nxt = value_end(text, val_beg, end)
            val_end = nxt
            while val_end > val_beg and text[val_end - 1] in SPHT:
                val_end -= 1
            yield Segment(start, nxt, text[start:nxt], text[att_beg:att_end],
                          text[val_beg:val_end], True, text[start:att_beg], text[val_end:nxt])
        else:
            nxt = equal
            yield Segment(start, nxt, text[start:nxt], text[att_beg:att_end], "", False,
                          text[start:att_beg], text[att_end:nxt])
        prev = nxt


@dataclass(frozen=True, slots=True)
class SetCookie:
    """The first pair of a Set-Cookie value (rule 5): ``name``, ``value``, and the text around
    them: ``lead`` before the name, ``rest`` after the value (attributes, untouched)."""

    name: str
    value: str
    lead: str
    rest: str

    def render(self, value: str | None = None) -> str:
        """The header value as HAProxy writes it back: spaces around ``=`` dropped."""
        return f"{self.lead}{self.name}={self.value if value is None else value}{self.rest}"


def parse_set_cookie(text: str) -> SetCookie | None:
    """The first ``NAME=VALUE`` pair of a Set-Cookie value, or None when it has no ``=``."""
    end = len(text)
    att_beg = 0
    while att_beg < end and text[att_beg] in SPHT:
        att_beg += 1
    att_end, equal = _name_end(text, att_beg, end, "=;")
    if equal >= end or text[equal] != "=":
        return None
    val_beg = equal + 1
    while val_beg < end and text[val_beg] in SPHT:
        val_beg += 1
    val_end = value_end(text, val_beg, end)
    while val_end > val_beg and text[val_end - 1] in SPHT:
        val_end -= 1
    return SetCookie(text[att_beg:att_end], text[val_beg:val_end], text[:att_beg],
                     text[val_end:])


def cookie_pairs(text: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` of every matchable cookie of a Cookie header, in order."""
    return [(seg.name, seg.value) for seg in segments(text) if seg.is_cookie]


def serialise_cookies(pairs: Iterable[tuple[str, str]]) -> str:
    """A Cookie header value for ``pairs``, joined by ``"; "`` (RFC 6265 section 4.2.1).

    Names and values are written as given: callers pass tokens without ``;``, ``,``, ``=``
    (in names), quotes, spaces at either end, or control characters.
    """
    return "; ".join(f"{name}={value}" for name, value in pairs)


def join_cookie_headers(values: Sequence[str]) -> str | None:
    """Several Cookie header values as one (``"; "``-joined), None when there are none."""
    if not values:
        return None
    return values[0] if len(values) == 1 else "; ".join(values)
