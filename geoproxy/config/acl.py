"""ACLs and conditions: ``acl NAME CRITERION [flags] PATTERN...`` and ``if|unless COND``.

Rules (manual section 7):
1. A criterion is a fetch with an implied matching method (``path_beg``, ``hdr_dom(host)``) or a
   base fetch with ``-m METHOD`` (``path -m beg``). Both spellings become the same
   ``AclCriterion``. ``req.hdr(NAME)`` is ``hdr(NAME)``. Header names are stored lower-case.
2. Flags come before the patterns: ``-i`` (ignore case), ``-m METHOD``, and ``--`` (end of
   flags). Other HAProxy flags (``-f`` pattern files, ``-n``, ``-M``, ``-u``) are refused.
3. Patterns are ORed. Regexes (``path_reg``, ``hdr_reg``, ``-m reg``) compile at load time;
   ``src`` patterns are addresses or networks.
4. A condition is terms ANDed within a group, groups ORed by ``||`` or ``or``. A term is an ACL
   name or an anonymous ACL ``{ CRITERION [flags] PATTERN... }``, negated by one or more ``!``
   (glued or separate). HAProxy's predefined ACLs are known by name unless a section defines an
   ACL of the same name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from geoproxy.config.draft import ConditionDraft, TermDraft
from geoproxy.config.intpattern import IntPatternError, parse_int_patterns
from geoproxy.config.model import Acl, AclCriterion, AclTest, Location

C = AclCriterion

# (base fetch, matching method) -> criterion
_BY_METHOD: dict[tuple[str, str], AclCriterion] = {
    ("path", "str"): C.PATH, ("path", "beg"): C.PATH_BEG, ("path", "end"): C.PATH_END,
    ("path", "sub"): C.PATH_SUB, ("path", "reg"): C.PATH_REG,
    ("hdr", "str"): C.HDR, ("hdr", "beg"): C.HDR_BEG, ("hdr", "end"): C.HDR_END,
    ("hdr", "sub"): C.HDR_SUB, ("hdr", "dom"): C.HDR_DOM, ("hdr", "reg"): C.HDR_REG,
    ("method", "str"): C.METHOD, ("src", "ip"): C.SRC,
    # the TCP fetches (see ``geoproxy.tcp.facts``)
    ("dst_port", "int"): C.DST_PORT, ("src_port", "int"): C.SRC_PORT,
    ("req.len", "int"): C.REQ_LEN, ("hello", "int"): C.SSL_HELLO_TYPE,
    ("sni", "str"): C.SSL_SNI, ("sni", "beg"): C.SSL_SNI_BEG, ("sni", "end"): C.SSL_SNI_END,
    ("sni", "sub"): C.SSL_SNI_SUB, ("sni", "reg"): C.SSL_SNI_REG, ("sni", "dom"): C.SSL_SNI_DOM,
    ("sni", "len"): C.SSL_SNI_LEN, ("sni", "found"): C.SSL_SNI_FOUND,
    ("payload", "bin"): C.PAYLOAD_BIN, ("payload", "found"): C.PAYLOAD_FOUND,
}
# fetch keyword -> (base fetch, implied method, whether "-m" may override it)
_FETCHES: dict[str, tuple[str, str, bool]] = {
    "path": ("path", "str", True), "path_beg": ("path", "beg", False),
    "path_end": ("path", "end", False), "path_sub": ("path", "sub", False),
    "path_reg": ("path", "reg", False),
    "hdr": ("hdr", "str", True), "req.hdr": ("hdr", "str", True),
    "hdr_beg": ("hdr", "beg", False), "hdr_end": ("hdr", "end", False),
    "hdr_sub": ("hdr", "sub", False), "hdr_dom": ("hdr", "dom", False),
    "hdr_reg": ("hdr", "reg", False),
    "method": ("method", "str", True), "src": ("src", "ip", True),
    "dst_port": ("dst_port", "int", True), "src_port": ("src_port", "int", True),
    "req.len": ("req.len", "int", True), "req_len": ("req.len", "int", True),
    "req.ssl_hello_type": ("hello", "int", True), "req_ssl_hello_type": ("hello", "int", True),
    "req.ssl_sni": ("sni", "str", True), "req_ssl_sni": ("sni", "str", True),
    "req.payload": ("payload", "bin", True), "payload": ("payload", "bin", True),
}
_TAKES_ARGUMENT = {"hdr"}
_INTEGER_CRITERIA = frozenset({C.DST_PORT, C.SRC_PORT, C.REQ_LEN, C.SSL_HELLO_TYPE,
                               C.SSL_SNI_LEN})
_NEEDS_NO_PATTERN = frozenset({C.SSL_SNI_FOUND, C.PAYLOAD_FOUND})
_PAYLOAD_ARGUMENT = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_MATCH_METHODS = ("str", "beg", "end", "sub", "dom", "reg", "ip", "found", "len", "int", "bool",
                  "dir", "bin")
NO_PATTERN_WARNING = (
    "no pattern to match against were provided, so this ACL will never match.")
_REFUSED_FLAGS = {"-f": "pattern files", "-n": "'-n'", "-M": "map files", "-u": "unique ids"}
_FETCH_TOKEN = re.compile(r"([a-z0-9_.]+)(?:\((.*)\))?", re.ASCII)

SUPPORTED_FETCHES = tuple(_FETCHES)


class AclError(Exception):
    """An ACL or a condition HAProxy would refuse; the message is HAProxy's detail text."""


def _predefined(name: str, criterion: AclCriterion, *patterns: str,
                argument: str | None = None) -> Acl:
    return Acl(name, (AclTest(criterion, argument, patterns),), Location("<predefined>", 0))


# HAProxy's predefined ACLs that geoproxy can evaluate (manual section 7.4).
PREDEFINED: dict[str, Acl] = {
    acl.name: acl
    for acl in (
        _predefined("TRUE", C.ALWAYS_TRUE),
        _predefined("FALSE", C.ALWAYS_FALSE),
        _predefined("HTTP", C.PROTO_HTTP),  # always true in an HTTP proxy
        _predefined("WAIT_END", C.WAIT_END),
        _predefined("REQ_CONTENT", C.REQ_LEN, "gt", "0"),
        _predefined("LOCALHOST", C.SRC, "127.0.0.0/8", "::1"),
        _predefined("METH_CONNECT", C.METHOD, "CONNECT"),
        _predefined("METH_DELETE", C.METHOD, "DELETE"),
        _predefined("METH_GET", C.METHOD, "GET", "HEAD"),
        _predefined("METH_HEAD", C.METHOD, "HEAD"),
        _predefined("METH_OPTIONS", C.METHOD, "OPTIONS"),
        _predefined("METH_POST", C.METHOD, "POST"),
        _predefined("METH_PUT", C.METHOD, "PUT"),
        _predefined("METH_TRACE", C.METHOD, "TRACE"),
        _predefined("HTTP_URL_SLASH", C.PATH_BEG, "/"),
    )
}


@dataclass(frozen=True, slots=True)
class ParsedTest:
    """An ACL test and whether HAProxy would warn that it has no pattern."""

    test: AclTest
    no_pattern: bool


def parse_test(words: Sequence[str]) -> ParsedTest:
    """Parse ``CRITERION [flags] PATTERN...``. Raises ``AclError``."""
    if not words or not words[0]:
        raise AclError("missing fetch method in ACL expression ''")
    base, method, may_override, argument = _fetch(words[0])
    ignore_case, index = False, 1
    while index < len(words) and words[index].startswith("-"):
        flag = words[index]
        if flag == "--":
            index += 1
            break
        if flag == "-i":
            ignore_case = True
        elif flag == "-m":
            method = _match_method(words, index, words[0], may_override)
            index += 1
        elif flag in _REFUSED_FLAGS:
            raise AclError(f"flag '{flag}' ({_REFUSED_FLAGS[flag]}) is not supported by geoproxy")
        else:
            break  # a pattern that starts with '-'
        index += 1
    criterion = _BY_METHOD.get((base, method))
    if criterion is None:
        raise AclError(f"matching method '{method}' on '{base}' is not supported by geoproxy")
    patterns = tuple(words[index:])
    if criterion in _INTEGER_CRITERIA:
        try:
            parse_int_patterns(patterns)
        except IntPatternError as exc:
            raise AclError(str(exc)) from None
    for pattern in patterns:
        _check_pattern(criterion, pattern, ignore_case)
    no_pattern = not patterns and criterion not in _NEEDS_NO_PATTERN
    return ParsedTest(AclTest(criterion, argument, patterns, ignore_case), no_pattern)


def _fetch(token: str) -> tuple[str, str, bool, str | None]:
    match = _FETCH_TOKEN.fullmatch(token)
    known = match is not None and match.group(1) in _FETCHES
    if match is None or not known:
        raise AclError(
            f"unknown fetch method '{token}' in ACL expression '{token}' "
            f"(geoproxy supports {', '.join(SUPPORTED_FETCHES)})")
    name, argument = match.group(1), match.group(2)
    base, method, may_override = _FETCHES[name]
    if base == "payload":
        payload = _PAYLOAD_ARGUMENT.fullmatch(argument or "")
        if payload is None:
            raise AclError(f"fetch method '{name}' expects <offset>,<length> (got '{token}')")
        return base, method, may_override, f"{payload.group(1)},{payload.group(2)}"
    if base in _TAKES_ARGUMENT:
        if not argument:
            raise AclError(f"fetch method '{name}' expects a header name: '{name}(NAME)'")
        if "," in argument:
            raise AclError(f"fetch method '{name}' : header occurrences "
                           f"('{token}') are not supported by geoproxy")
        return base, method, may_override, argument.strip().lower()
    if argument is not None:
        raise AclError(f"fetch method '{name}' takes no argument (got '{token}')")
    return base, method, may_override, None


def _match_method(words: Sequence[str], index: int, fetch: str, may_override: bool) -> str:
    if index + 1 >= len(words):
        raise AclError("'-m' expects a matching method")
    method = words[index + 1]
    if method not in _MATCH_METHODS:
        raise AclError(f"unknown matching method '{method}' when parsing ACL expression")
    if not may_override:
        raise AclError(f"'-m' cannot be used with '{fetch}', which already implies its "
                       "matching method")
    return method


def _check_pattern(criterion: AclCriterion, pattern: str, ignore_case: bool) -> None:
    if criterion is C.PAYLOAD_BIN and not _HEX.fullmatch(pattern):
        raise AclError(f"'{pattern}' is not a binary pattern (an even number of hex digits)")
    if criterion in (C.PATH_REG, C.HDR_REG, C.SSL_SNI_REG):
        try:
            re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise AclError(f"regex '{pattern}' is invalid (error={exc.msg}, "
                           f"erroffset={exc.pos})") from None
    elif criterion is C.SRC:
        try:
            ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            raise AclError(f"'{pattern}' is not a valid IPv4 or IPv6 address") from None


@dataclass(frozen=True, slots=True)
class ConditionScope:
    """What a condition may refer to: ``is_known`` says whether the section has an ACL of that
    name so far; ``warn`` receives HAProxy's warnings (an anonymous ACL without pattern)."""

    is_known: Callable[[str], bool]
    warn: Callable[[str], None]


def parse_condition(words: Sequence[str], location: Location,
                    scope: ConditionScope) -> ConditionDraft:
    """Parse ``if|unless TERMS...``: ``words[0]`` is "if" or "unless". Raises ``AclError``."""
    groups: list[tuple[TermDraft, ...]] = []
    terms: list[TermDraft] = []
    index = 1
    while index < len(words):
        word = words[index]
        if word in ("||", "or"):
            if not terms:
                raise AclError(f"missing ACL before '{word}'")
            groups.append(tuple(terms))
            terms = []
            index += 1
            continue
        term, index = _term(words, index, location, scope)
        terms.append(term)
    if not terms:
        raise AclError(f"missing ACL after '{words[-1]}'")
    groups.append(tuple(terms))
    return ConditionDraft(words[0] == "unless", tuple(groups), location)


def _term(words: Sequence[str], index: int, location: Location,
          scope: ConditionScope) -> tuple[TermDraft, int]:
    negated = False
    word = words[index]
    while word.startswith("!"):
        negated = not negated
        word = word[1:]
        if not word:
            index += 1
            if index >= len(words):
                raise AclError("missing ACL after '!'")
            word = words[index]
    if word == "{":
        return _anonymous(words, index, location, negated, scope)
    if not scope.is_known(word) and word not in PREDEFINED:
        raise AclError(f"no such ACL : '{word}'")
    return TermDraft(word, negated), index + 1


def _anonymous(words: Sequence[str], index: int, location: Location,
               negated: bool, scope: ConditionScope) -> tuple[TermDraft, int]:
    try:
        end = list(words).index("}", index + 1)
    except ValueError:
        raise AclError("missing closing '}' in condition") from None
    inner = words[index + 1:end]
    parsed = parse_test(inner)
    acl = Acl("{ " + " ".join(inner) + " }", (parsed.test,), location)
    if parsed.no_pattern:
        scope.warn(f"anonymous ACL '{acl.name}' : {NO_PATTERN_WARNING}")
    return TermDraft(acl.name, negated, acl), end + 1
