"""ACL conditions over a TCP connection's facts, with HAProxy's third answer: undecided.

Rules (HAProxy's ``acl_exec_cond``):
1. A test answers True, False or None (undecided: a fetch said ``WAIT``). A negated term turns
   True and False around and leaves None alone; a fetch with no value fails the test, so its
   negation holds.
2. Terms are ANDed within a group (False wins, then None), groups ORed (True wins, then None);
   ``unless`` turns the result around, None again left alone.
3. HTTP tests (``path``, ``hdr``...) run the HTTP proxy's own matchers (``geoproxy.proxy.acl``)
   on the environ the buffer's HTTP head gives (``TcpFacts.http_request``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from geoproxy.config.intpattern import matches, parse_int_patterns
from geoproxy.config.model import Acl, AclCriterion, AclTest, Condition
from geoproxy.proxy.acl import compile_test as compile_http_test
from geoproxy.tcp.facts import ABSENT, WAIT, NoValue, TcpFacts

Tri = bool | None
TcpPredicate = Callable[[TcpFacts], Tri]
C = AclCriterion
_SNI_STRINGS = {C.SSL_SNI, C.SSL_SNI_BEG, C.SSL_SNI_END, C.SSL_SNI_SUB, C.SSL_SNI_REG,
                C.SSL_SNI_DOM}


def _decided(value: object, test: Callable[[object], bool]) -> Tri:
    if value is WAIT:
        return None
    if value is ABSENT:
        return False
    return test(value)


def _string_test(test: AclTest) -> Callable[[str], bool]:
    fold = test.ignore_case
    patterns = tuple(p.lower() for p in test.patterns) if fold else test.patterns
    criterion = test.criterion
    if criterion is C.SSL_SNI_REG:
        regexes = tuple(re.compile(p, re.IGNORECASE if fold else 0) for p in test.patterns)
        return lambda value: any(r.search(value) for r in regexes)

    def prepared(value: str) -> str:
        return value.lower() if fold else value

    if criterion is C.SSL_SNI:
        exact = frozenset(patterns)
        return lambda value: prepared(value) in exact
    if criterion is C.SSL_SNI_BEG:
        return lambda value: prepared(value).startswith(patterns)
    if criterion is C.SSL_SNI_END:
        return lambda value: prepared(value).endswith(patterns)
    if criterion is C.SSL_SNI_SUB:
        return lambda value: any(p in prepared(value) for p in patterns)
    words = tuple(re.compile(r"(?:^|[./:?])" + re.escape(p) + r"(?:$|[./:?])") for p in patterns)
    return lambda value: any(w.search(prepared(value)) for w in words)


def _source(test: AclTest) -> TcpPredicate:
    networks = tuple(ipaddress.ip_network(p, strict=False) for p in test.patterns)

    def holds(facts: TcpFacts) -> Tri:
        try:
            address = ipaddress.ip_address(facts.source[0])
        except ValueError:
            return False
        return any(address in network for network in networks)

    return holds


def _payload(test: AclTest) -> TcpPredicate:
    offset, length = (int(part) for part in (test.argument or "0,0").split(","))
    wanted = tuple(bytes.fromhex(p) for p in test.patterns)
    if test.criterion is C.PAYLOAD_FOUND:
        return lambda facts: _decided(facts.payload_slice(offset, length), lambda _: True)
    return lambda facts: _decided(facts.payload_slice(offset, length),
                                  lambda value: value in wanted)


def _integer(test: AclTest) -> TcpPredicate:
    ranges = parse_int_patterns(test.patterns)
    criterion = test.criterion

    def value_of(facts: TcpFacts) -> int | NoValue:
        if criterion is C.DST_PORT:
            return facts.destination[1]
        if criterion is C.SRC_PORT:
            return facts.source[1]
        if criterion is C.REQ_LEN:
            return len(facts.payload)
        if criterion is C.SSL_HELLO_TYPE:
            return facts.hello_type()
        name = facts.server_name()  # SSL_SNI_LEN
        return name if isinstance(name, NoValue) else len(name)

    return lambda facts: _decided(value_of(facts), lambda value: matches(int(str(value)), ranges))


def compile_test(test: AclTest) -> TcpPredicate:
    criterion = test.criterion
    if criterion is C.ALWAYS_TRUE:
        return lambda facts: True
    if criterion is C.ALWAYS_FALSE:
        return lambda facts: False
    if criterion is C.WAIT_END:
        return lambda facts: True if facts.final else None
    if criterion is C.SRC:
        return _source(test)
    if criterion in (C.DST_PORT, C.SRC_PORT, C.REQ_LEN, C.SSL_HELLO_TYPE, C.SSL_SNI_LEN):
        return _integer(test)
    if criterion in (C.PAYLOAD_BIN, C.PAYLOAD_FOUND):
        return _payload(test)
    if criterion is C.SSL_SNI_FOUND:
        return lambda facts: _decided(facts.server_name(), lambda _: True)
    if criterion in _SNI_STRINGS:
        match = _string_test(test)
        return lambda facts: _decided(facts.server_name(), lambda name: match(str(name)))
    if criterion is C.PROTO_HTTP:
        return lambda facts: _decided(facts.http_request(), lambda _: True)
    http = compile_http_test(test)  # rule 3
    return lambda facts: _decided(facts.http_request(), lambda environ: http(environ))  # type: ignore[arg-type]


def _compile_acl(acl: Acl) -> TcpPredicate:
    tests = tuple(compile_test(test) for test in acl.tests)

    def holds(facts: TcpFacts) -> Tri:
        undecided = False
        for test in tests:
            result = test(facts)
            if result:
                return True
            undecided = undecided or result is None
        return None if undecided else False

    return holds


def _negate(result: Tri) -> Tri:
    return None if result is None else not result


def compile_condition(condition: Condition) -> TcpPredicate:
    """``if``/``unless`` COND as one tri-state predicate (rules 1 and 2)."""
    groups = tuple(
        tuple((_compile_acl(term.test), term.negated) for term in group)
        for group in condition.any_of
    )

    def holds(facts: TcpFacts) -> Tri:
        undecided = False
        for group in groups:
            group_result: Tri = True
            for test, negated in group:
                result = test(facts)
                if negated:
                    result = _negate(result)
                if result is False:
                    group_result = False
                    break
                if result is None:
                    group_result = None
            if group_result:
                return True
            undecided = undecided or group_result is None
        return None if undecided else False

    if condition.unless:
        return lambda facts: _negate(holds(facts))
    return holds
