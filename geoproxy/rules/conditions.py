"""ACLs and ``if``/``unless`` conditions compiled once into predicates over a ``Txn`` (pure).

HAProxy's evaluation (manual section 7): an ACL test fetches its samples (every value of a
multi-valued fetch such as ``hdr``), converts each, and matches if any value matches any
pattern; no sample means no match. The tests of one ACL name are ORed; a condition ANDs the
terms of a group and ORs the groups; ``!`` negates a term, ``unless`` the whole condition.
An ACL whose fetches cannot be read where the condition runs (a response fetch in a request
rule) never matches, as HAProxy warns it will not.
"""

from __future__ import annotations

from collections.abc import Callable

from geoproxy.config.model import Acl, AclTest, Condition
from geoproxy.rules.auth import AuthenticatedUser
from geoproxy.rules.expr import compile_expr, compile_expr_all, fetch_usable
from geoproxy.rules.fetches import CompileEnv
from geoproxy.rules.matchers import compile_match
from geoproxy.rules.txn import Txn

Predicate = Callable[[Txn], bool]


def compile_test(test: AclTest, env: CompileEnv) -> Predicate:
    match = test.match
    matcher: Callable[[object], bool]
    if match.method == "group":
        groups = frozenset(match.patterns)
        matcher = lambda value: isinstance(  # noqa: E731
            value, AuthenticatedUser) and not value.groups.isdisjoint(groups)
    else:
        matcher = compile_match(match)
    every = compile_expr_all(test.expr, env)
    if every is not None:
        return lambda txn: any(matcher(value) for value in every(txn))
    evaluate = compile_expr(test.expr, env)

    def holds(txn: Txn) -> bool:
        value = evaluate(txn)
        return value is not None and matcher(value)

    return holds


def acl_usable(acl: Acl, response: bool) -> bool:
    """Whether any test of ``acl`` can be read in a request (or response) rule."""
    return any(fetch_usable(test.expr.fetch.name, response) for test in acl.tests)


def compile_acl(acl: Acl, env: CompileEnv, response: bool | None = None) -> Predicate:
    tests = tuple(
        compile_test(test, env)
        for test in acl.tests
        if response is None or fetch_usable(test.expr.fetch.name, response)
    )
    if not tests:
        return lambda txn: False
    if len(tests) == 1:
        return tests[0]
    return lambda txn: any(test(txn) for test in tests)


def compile_condition(condition: Condition, env: CompileEnv | None = None,
                      response: bool | None = None) -> Predicate:
    """``if``/``unless`` COND as one predicate; ``response`` says where it runs (None: no
    side check, for conditions outside rules)."""
    compile_env = env or CompileEnv()
    groups = tuple(
        tuple((compile_acl(term.test, compile_env, response), term.negated) for term in group)
        for group in condition.any_of
    )
    if len(groups) == 1 and len(groups[0]) == 1:
        (test, negated), = groups[0]
        holds: Predicate
        holds = (lambda txn: not test(txn)) if negated else test
    else:
        def holds(txn: Txn) -> bool:
            return any(all(test(txn) != negated for test, negated in group) for group in groups)

    if condition.unless:
        return lambda txn: not holds(txn)
    return holds
