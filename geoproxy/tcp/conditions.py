"""ACL conditions over a TCP connection's facts, with HAProxy's third answer: undecided.

Rules (HAProxy's ``acl_exec_cond``):
1. A test is the rules engine's own (``geoproxy.rules.conditions``: fetch, converters,
   matching), run on a ``Txn`` made from the facts (``Txn.tcp``; the environ of an HTTP request
   head in the buffer, for the HTTP fetches, as HAProxy reads them in a TCP proxy).
2. Before running it, the test asks whether its fetch could still change its answer: a fetch
   of the buffer (``geoproxy.rules.fetch_tcp``) or an HTTP fetch whose ``TcpFacts`` answer is
   ``WAIT``. Then the test is undecided (None) instead of True or False. Once the facts are
   final nothing waits.
3. A negated term turns True and False around and leaves None alone. Terms are ANDed within a
   group (False wins, then None), groups ORed (True wins, then None); ``unless`` turns the
   result around, None again left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geoproxy.config.model import Acl, AclTest, Condition
from geoproxy.rules.calls import arg_int
from geoproxy.rules.conditions import compile_test as compile_txn_test
from geoproxy.rules.fetch_ssl import TLS_FACTS
from geoproxy.rules.fetch_tcp import BUFFER_FETCHES
from geoproxy.rules.fetches import FETCHES, CompileEnv
from geoproxy.rules.txn import Txn
from geoproxy.tcp.facts import WAIT, TcpFacts

Tri = bool | None
TcpPredicate = Callable[[TcpFacts], Tri]
_TXN = "txn"  # where a facts' Txn is cached (TcpFacts forgets it when bytes arrive)


def txn_of(facts: TcpFacts) -> Txn:
    """The ``Txn`` the rules engine reads for ``facts`` (rule 1), made once per content."""
    cached = facts._cache.get(_TXN)
    if isinstance(cached, Txn) and cached.tcp is facts:
        return cached
    head = facts.http_request()
    environ: dict[str, Any] = dict(head) if isinstance(head, dict) else {
        "REMOTE_ADDR": facts.source[0], "REMOTE_PORT": str(facts.source[1]),
        "SERVER_NAME": facts.destination[0], "SERVER_PORT": str(facts.destination[1]),
    }
    if facts.tls is not None:
        environ[TLS_FACTS] = facts.tls  # ssl_fc* (geoproxy.rules.fetch_ssl)
    txn = Txn(environ)
    txn.tcp = facts
    txn.stick = facts.stick  # the connection's stick counters (geoproxy.tcp.counters)
    facts._cache[_TXN] = txn
    return txn


def _waits(test: AclTest) -> Callable[[TcpFacts], bool]:
    """Whether the test's fetch could still change its answer (rule 2)."""
    call = test.expr.fetch
    name = call.name
    if name in ("wait_end",):
        return lambda facts: not facts.final
    if name in ("req.ssl_sni", "req_ssl_sni"):
        return lambda facts: facts.server_name() is WAIT
    if name == "req.ssl_alpn":
        return lambda facts: facts.alpn() is WAIT
    if name in ("req.ssl_hello_type", "req_ssl_hello_type"):
        return lambda facts: facts.hello_type() is WAIT
    if name in ("req.payload", "payload"):
        offset, length = arg_int(call.args[0]), arg_int(call.args[1])
        return lambda facts: facts.payload_slice(offset, length) is WAIT
    if name in BUFFER_FETCHES or FETCHES[name].needs == "req":  # HTTP: the request head
        return lambda facts: facts.http_request() is WAIT
    return lambda facts: False


def compile_test(test: AclTest, env: CompileEnv | None = None) -> TcpPredicate:
    holds = compile_txn_test(test, env or CompileEnv())
    waits = _waits(test)

    def decide(facts: TcpFacts) -> Tri:
        if waits(facts):
            return None
        return holds(txn_of(facts))

    return decide


def _compile_acl(acl: Acl, env: CompileEnv | None) -> TcpPredicate:
    tests = tuple(compile_test(test, env) for test in acl.tests)

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


def compile_condition(condition: Condition, env: CompileEnv | None = None) -> TcpPredicate:
    """``if``/``unless`` COND as one tri-state predicate (rules 2 and 3)."""
    groups = tuple(
        tuple((_compile_acl(term.test, env), term.negated) for term in group)
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
