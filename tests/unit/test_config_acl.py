"""ACLs and conditions (manual section 7) as the parser builds them."""

from __future__ import annotations

import pytest

from geoproxy.config import parse_text
from geoproxy.config.acl import PREDEFINED
from geoproxy.config.model import Condition, Frontend

HEAD = (
    "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
    "    timeout server 1s\n"
    "backend b\n    server s 127.0.0.1:9001\n"
    "frontend f\n    bind :80\n    default_backend b\n"
)


def frontend(body: str) -> Frontend:
    return parse_text(HEAD + body, "t.cfg", env={}).frontends[0]


def only_condition(body: str) -> Condition:
    (rule,) = frontend(body).use_backends
    assert rule.condition is not None
    return rule.condition


def test_a_later_acl_line_extends_the_acl_a_rule_already_uses_as_in_haproxy() -> None:
    parsed = frontend(
        "    acl api path_beg /api\n    use_backend b if api\n    acl api path_beg /v2\n")
    condition = parsed.use_backends[0].condition
    assert condition is not None
    (term,) = condition.any_of[0]
    assert [t.match.patterns for t in term.test.tests] == [("/api",), ("/v2",)]
    assert term.test == parsed.acls[0]


def test_terms_are_anded_and_groups_ored() -> None:
    condition = only_condition(
        "    acl a path /a\n    acl b path /b\n    acl c path /c\n"
        "    use_backend b if a !b || c or !a\n")
    shown = [[("!" if t.negated else "") + t.test.name for t in group]
             for group in condition.any_of]
    assert shown == [["a", "!b"], ["c"], ["!a"]]
    assert condition.unless is False


@pytest.mark.parametrize(("words", "negated"),
                         [("!a", True), ("! a", True), ("!!a", False), ("! !a", False)])
def test_negation_may_be_glued_separate_or_repeated(words: str, negated: bool) -> None:
    condition = only_condition(f"    acl a path /a\n    use_backend b unless {words}\n")
    (term,) = condition.any_of[0]
    assert (condition.unless, term.negated) == (True, negated)


def test_an_anonymous_acl_is_named_by_its_text_and_carries_its_test() -> None:
    condition = only_condition("    use_backend b if !{ hdr_dom(Host) -i example.com }\n")
    (term,) = condition.any_of[0]
    assert term.negated
    assert term.test.name == "{ hdr_dom(Host) -i example.com }"
    (test,) = term.test.tests
    assert (test.expr.fetch.name, test.expr.fetch.args, test.match.method,
            test.match.patterns, test.match.ignore_case) == (
        "hdr", ("Host",), "dom", ("example.com",), True)


def test_predefined_acls_are_known_but_a_section_acl_of_the_same_name_wins() -> None:
    condition = only_condition("    use_backend b if METH_GET LOCALHOST TRUE\n")
    assert [t.test for t in condition.any_of[0]] == [
        PREDEFINED["METH_GET"], PREDEFINED["LOCALHOST"], PREDEFINED["TRUE"]]
    own = only_condition("    acl TRUE path /never\n    use_backend b if TRUE\n")
    assert own.any_of[0][0].test.tests[0].expr.fetch.name == "path"


@pytest.mark.parametrize(
    ("acl", "criterion"),
    [
        ("path -m str /x", ("path", "str")), ("path_beg /x", ("path", "beg")),
        ("path -m end /x", ("path", "end")), ("path_sub /x", ("path", "sub")),
        ("path -m reg ^/x", ("path", "reg")), ("hdr(a) -m beg x", ("hdr", "beg")),
        ("req.hdr(a) -m dom x", ("req.hdr", "dom")), ("hdr_end(a) x", ("hdr", "end")),
        ("method GET", ("method", "str")), ("src 10.0.0.1", ("src", "ip")),
        ("url_beg /x", ("url", "beg")), ("status 200:299", ("status", "int")),
        ("ssl_fc", ("ssl_fc", "bool")), ("hdr(host),lower -m found", ("hdr", "found")),
    ],
)
def test_match_methods_and_derived_fetches_give_a_fetch_and_a_method(
    acl: str, criterion: tuple[str, str]
) -> None:
    (parsed,) = frontend(f"    acl x {acl}\n").acls
    test = parsed.tests[0]
    assert (test.expr.fetch.name, test.match.method) == criterion


def test_an_acl_without_pattern_warns_that_it_never_matches() -> None:
    config = parse_text(HEAD + "    acl never path\n    use_backend b if { path_beg }\n",
                        "t.cfg", env={})
    messages = [w.message for w in config.warnings]
    assert messages == [
        "acl 'never' : no pattern to match against were provided, so this ACL will never "
        "match.",
        "'use_backend' : anonymous ACL '{ path_beg }' : no pattern to match against were "
        "provided, so this ACL will never match.",
    ]


def test_double_dash_ends_the_flags_so_a_pattern_may_start_with_a_dash() -> None:
    (acl,) = frontend("    acl x path_beg -i -- -i /x\n").acls
    assert (acl.tests[0].match.ignore_case, acl.tests[0].match.patterns) == (True, ("-i", "/x"))
