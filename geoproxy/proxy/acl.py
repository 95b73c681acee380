"""ACL evaluation: conditions compiled once into predicates over a WSGI environ.

HAProxy's matching rules, as its manual states them: the patterns of one test are ORed; ``-i``
folds case; ``path`` is the request path without the query string, undecoded; ``hdr(name)``
looks at every value of the header (comma-separated values are separate values); ``*_dom``
matches whole dot-, slash- or colon-delimited words; ``src`` matches addresses and networks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import Any

from geoproxy.config.intpattern import matches as int_matches
from geoproxy.config.intpattern import parse_int_patterns
from geoproxy.config.model import Acl, AclCriterion, AclTest, Condition

Environ = dict[str, Any]
Predicate = Callable[[Environ], bool]


def request_path(environ: Environ) -> str:
    """The path as the client sent it (no query, not decoded); absolute-form URIs lose their
    scheme and authority, as HAProxy's ``path`` does."""
    uri: str = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    if not uri.startswith("/"):
        scheme_end = uri.find("://")
        if scheme_end >= 0:
            slash = uri.find("/", scheme_end + 3)
            uri = uri[slash:] if slash >= 0 else "/"
    query = uri.find("?")
    return uri if query < 0 else uri[:query]


def header_values(environ: Environ, name: str) -> Iterator[str]:
    if name == "content-type":
        raw = environ.get("CONTENT_TYPE")
    elif name == "content-length":
        raw = environ.get("CONTENT_LENGTH")
    else:
        raw = environ.get("HTTP_" + name.upper().replace("-", "_"))
    if raw:
        for value in raw.split(","):
            yield value.strip()


def _string_matcher(test: AclTest) -> Callable[[str], bool]:
    fold = test.ignore_case
    patterns = tuple(p.lower() for p in test.patterns) if fold else test.patterns
    criterion = test.criterion
    if criterion in (AclCriterion.PATH_REG, AclCriterion.HDR_REG):
        regexes = tuple(re.compile(p, re.IGNORECASE if fold else 0) for p in test.patterns)
        return lambda value: any(r.search(value) for r in regexes)

    def prepared(value: str) -> str:
        return value.lower() if fold else value

    if criterion in (AclCriterion.PATH, AclCriterion.HDR, AclCriterion.METHOD):
        exact = frozenset(patterns)
        return lambda value: prepared(value) in exact
    if criterion in (AclCriterion.PATH_BEG, AclCriterion.HDR_BEG):
        return lambda value: prepared(value).startswith(patterns)
    if criterion in (AclCriterion.PATH_END, AclCriterion.HDR_END):
        return lambda value: prepared(value).endswith(patterns)
    if criterion in (AclCriterion.PATH_SUB, AclCriterion.HDR_SUB):
        return lambda value: any(p in prepared(value) for p in patterns)
    if criterion is AclCriterion.HDR_DOM:
        words = tuple(
            re.compile(r"(?:^|[./:?])" + re.escape(p) + r"(?:$|[./:?])") for p in patterns
        )
        return lambda value: any(w.search(prepared(value)) for w in words)
    raise ValueError(f"no string matcher for {criterion.value}")


def _source_matcher(test: AclTest) -> Predicate:
    networks = tuple(ipaddress.ip_network(p, strict=False) for p in test.patterns)

    def matches(environ: Environ) -> bool:
        try:
            address = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in network for network in networks)

    return matches


def _port_matcher(test: AclTest, key: str) -> Predicate:
    ranges = parse_int_patterns(test.patterns)

    def matches(environ: Environ) -> bool:
        port = environ.get(key, "")
        return port.isdigit() and int_matches(int(port), ranges)

    return matches


# what the TCP fetches mean in an HTTP request: the content is a whole HTTP request (HTTP,
# WAIT_END hold), not a TLS hello nor anything still buffered (the others never match)
_HTTP_HOLDS = frozenset({AclCriterion.PROTO_HTTP, AclCriterion.WAIT_END})
_HTTP_NEVER = frozenset({
    AclCriterion.REQ_LEN, AclCriterion.SSL_HELLO_TYPE, AclCriterion.SSL_SNI,
    AclCriterion.SSL_SNI_BEG, AclCriterion.SSL_SNI_END, AclCriterion.SSL_SNI_SUB,
    AclCriterion.SSL_SNI_REG, AclCriterion.SSL_SNI_DOM, AclCriterion.SSL_SNI_LEN,
    AclCriterion.SSL_SNI_FOUND, AclCriterion.PAYLOAD_BIN, AclCriterion.PAYLOAD_FOUND,
})


def compile_test(test: AclTest) -> Predicate:
    criterion = test.criterion
    if criterion in _HTTP_HOLDS:
        return lambda environ: True
    if criterion in _HTTP_NEVER:
        return lambda environ: False
    if criterion is AclCriterion.DST_PORT:
        return _port_matcher(test, "SERVER_PORT")
    if criterion is AclCriterion.SRC_PORT:
        return _port_matcher(test, "REMOTE_PORT")
    if criterion is AclCriterion.ALWAYS_TRUE:
        return lambda environ: True
    if criterion is AclCriterion.ALWAYS_FALSE:
        return lambda environ: False
    if criterion is AclCriterion.SRC:
        return _source_matcher(test)
    match = _string_matcher(test)
    if criterion is AclCriterion.METHOD:
        return lambda environ: match(environ["REQUEST_METHOD"])
    if criterion.value.startswith("path"):
        return lambda environ: match(request_path(environ))
    header = test.argument or "host"
    return lambda environ: any(match(value) for value in header_values(environ, header))


def compile_acl(acl: Acl) -> Predicate:
    tests = tuple(compile_test(test) for test in acl.tests)
    if len(tests) == 1:
        return tests[0]
    return lambda environ: any(test(environ) for test in tests)


def compile_condition(condition: Condition) -> Predicate:
    """``if``/``unless`` COND as one predicate: terms ANDed within a group, groups ORed."""
    groups = tuple(
        tuple((compile_acl(term.test), term.negated) for term in group)
        for group in condition.any_of
    )

    def holds(environ: Environ) -> bool:
        return any(all(test(environ) != negated for test, negated in group) for group in groups)

    if condition.unless:
        return lambda environ: not holds(environ)
    return holds
