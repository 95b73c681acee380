"""The ``-m`` matching methods of ACLs, compiled once into predicates over one sample (pure).

HAProxy's meaning (configuration manual 7.1, ``pattern.c``):
- ``found``: the fetch returned a sample; ``bool``: the sample, as a boolean, is true. Neither
  takes patterns.
- ``str``, ``beg``, ``end``, ``sub``: exact, prefix, suffix and substring comparison of the
  sample as a string; ``-i`` ignores case. ``reg``: a regular expression search.
- ``dir`` / ``dom``: the pattern appears in the sample as whole words, words being delimited
  by ``/`` and ``?`` (``dir``) or also ``.`` and ``:`` (``dom``); the pattern's own leading and
  trailing delimiters do not count.
- ``int``: the sample as an integer against values ``N``, ranges ``N:M``, ``:M``, ``N:``, or an
  operator word (``eq``, ``ge``, ``gt``, ``le``, ``lt``) followed by a value. ``len``: the
  same comparisons on the sample's length as a string.
- ``ip``: the sample as an address, within an address or network (``A.B.C.D/N`` or
  ``A.B.C.D/M.M.M.M``, IPv6 too); an IPv4 sample matches IPv4-mapped IPv6 networks and back.
- ``bin``: the sample's bytes equal the hexadecimal pattern.
The patterns of one ACL are ORed; a method with no pattern never matches.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Final

from geoproxy.rules.spec import MatchSpec
from geoproxy.rules.values import to_bool, to_bytes, to_int, to_ip, to_str

Matcher = Callable[[object], bool]
METHODS: Final = ("found", "bool", "int", "ip", "bin", "len", "str", "sub", "reg", "beg", "end",
                  "dir", "dom")
NO_PATTERN_METHODS: Final = frozenset({"found", "bool"})
_OPERATORS: Final = ("eq", "ge", "gt", "le", "lt")
_DIR_DELIMS: Final = "/?"
_DOM_DELIMS: Final = "/?.:"


class PatternError(ValueError):
    """A pattern the method cannot use; the message is HAProxy's detail text."""


def check_patterns(method: str, patterns: Sequence[str], ignore_case: bool) -> None:
    """Raise ``PatternError`` when a pattern is invalid for ``method`` (at load time)."""
    if method in NO_PATTERN_METHODS and patterns:
        raise PatternError(f"'-m {method}' takes no pattern (got '{patterns[0]}')")
    if method == "reg":
        for pattern in patterns:
            try:
                re.compile(pattern, re.IGNORECASE if ignore_case else 0)
            except re.error as exc:
                raise PatternError(f"regex '{pattern}' is invalid (error={exc.msg}, "
                                   f"erroffset={exc.pos})") from None
    elif method in ("int", "len"):
        _int_tests(patterns)
    elif method == "ip":
        for pattern in patterns:
            network(pattern)
    elif method == "bin":
        for pattern in patterns:
            try:
                bytes.fromhex(pattern)
            except ValueError:
                raise PatternError(f"'{pattern}' is not a valid hexadecimal string") from None


def compile_match(spec: MatchSpec) -> Matcher:
    """The predicate of ``spec`` over one sample value (not None)."""
    method, patterns, fold = spec.method, spec.patterns, spec.ignore_case
    if method == "found":
        return lambda value: True
    if method == "bool":
        return lambda value: bool(to_bool(value))
    if not patterns:
        return lambda value: False
    if method in ("int", "len"):
        tests = _int_tests(patterns)
        if method == "int":
            return lambda value: _int_matches(to_int(value), tests)
        return lambda value: _int_matches(_length(value), tests)
    if method == "ip":
        return _ip_matcher(patterns)
    if method == "bin":
        wanted = frozenset(bytes.fromhex(p) for p in patterns)
        return lambda value: to_bytes(value) in wanted
    return _string_matcher(method, patterns, fold)


def _length(value: object) -> int | None:
    text = to_str(value)
    return None if text is None else len(text)


def _string_matcher(method: str, patterns: Sequence[str], fold: bool) -> Matcher:
    if method == "reg":
        regexes = tuple(re.compile(p, re.IGNORECASE if fold else 0) for p in patterns)

        def reg(value: object) -> bool:
            text = to_str(value)
            return text is not None and any(r.search(text) for r in regexes)

        return reg
    folded = tuple(p.lower() for p in patterns) if fold else tuple(patterns)
    if method == "str":
        exact = frozenset(folded)
        if fold:
            return lambda value: (t := to_str(value)) is not None and t.lower() in exact
        return lambda value: (t := to_str(value)) is not None and t in exact
    if method in ("dir", "dom"):
        delims = _DIR_DELIMS if method == "dir" else _DOM_DELIMS
        words = tuple(p.strip(delims) for p in folded)
        return lambda value: (t := to_str(value)) is not None and any(
            match_word(t.lower() if fold else t, w, delims) for w in words)
    test: Callable[[str], bool]
    if method == "beg":
        prefixes = folded
        test = lambda text: text.startswith(prefixes)  # noqa: E731
    elif method == "end":
        suffixes = folded
        test = lambda text: text.endswith(suffixes)  # noqa: E731
    elif method == "sub":
        test = lambda text: any(p in text for p in folded)  # noqa: E731
    else:
        raise ValueError(f"no matcher for '-m {method}'")
    if fold:
        return lambda value: (t := to_str(value)) is not None and test(t.lower())
    return lambda value: (t := to_str(value)) is not None and test(t)


def match_word(text: str, word: str, delims: str) -> bool:
    """HAProxy's ``match_word``: ``word`` in ``text`` bounded by delimiters or the ends."""
    length = len(word)
    if length == 0:
        return False
    start = 0
    while True:
        found = text.find(word, start)
        if found < 0:
            return False
        before_ok = found == 0 or text[found - 1] in delims
        after = found + length
        if before_ok and (after == len(text) or text[after] in delims):
            return True
        start = found + 1


IntTest = tuple[int | None, int | None]  # inclusive bounds, None: unbounded


def _int_tests(patterns: Sequence[str]) -> tuple[IntTest, ...]:
    tests: list[IntTest] = []
    operator = ""
    for pattern in patterns:
        if pattern in _OPERATORS:
            operator = pattern
            continue
        tests.append(_int_test(pattern, operator))
        operator = ""
    if operator:
        raise PatternError(f"missing value after operator '{operator}'")
    return tuple(tests)


def _int_test(pattern: str, operator: str) -> IntTest:
    def number(text: str) -> int:
        if not re.fullmatch(r"[-+]?\d+", text):
            raise PatternError(f"'{pattern}' is not a number")
        return int(text)

    if operator:
        value = number(pattern)
        return {"eq": (value, value), "ge": (value, None), "gt": (value + 1, None),
                "le": (None, value), "lt": (None, value - 1)}[operator]
    if ":" in pattern:
        low, _, high = pattern.partition(":")
        return (number(low) if low else None, number(high) if high else None)
    value = number(pattern)
    return (value, value)


def _int_matches(value: int | None, tests: tuple[IntTest, ...]) -> bool:
    if value is None:
        return False
    return any((low is None or value >= low) and (high is None or value <= high)
               for low, high in tests)


def network(pattern: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address, slash, mask = pattern.partition("/")
    try:
        if slash and "." in mask:
            return ipaddress.ip_network(f"{address}/{mask}", strict=False)
        return ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        raise PatternError(f"'{pattern}' is not a valid IPv4 or IPv6 address") from None


def _ip_matcher(patterns: Sequence[str]) -> Matcher:
    networks = tuple(network(p) for p in patterns)

    def matches(value: object) -> bool:
        address = to_ip(value)
        if address is None:
            return False
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        elif isinstance(address, ipaddress.IPv4Address):
            candidates.append(ipaddress.IPv6Address(f"::ffff:{address}"))
        return any(a in n for a in candidates for n in networks if a.version == n.version)

    return matches
