"""Conditional blocks (manual section 2.4): which lines survive, and how conditions read."""

from __future__ import annotations

import pytest

from geoproxy.config.conditional import apply_conditions
from geoproxy.config.lexer import lex

ENV = {"APP": "demo", "EMPTY": ""}


def kept(text: str) -> list[str]:
    directives, errors = lex(text, "t.cfg", ENV)
    assert errors == []
    remaining, block_errors, _ = apply_conditions(directives, ENV)
    assert block_errors == []
    return [d.keyword for d in remaining]


@pytest.mark.parametrize(
    ("condition", "truth"),
    [
        ("", False), ("0", False), ("1", True), ("-1", True), ("42", True),
        ("defined(APP)", True), ("defined(EMPTY)", True), ("defined(NOPE)", False),
        ('streq("$APP",demo)', True), ('strneq("$APP",demo)', False),
        ('streq("$NOPE",)', True),
        ("feature(OPENSSL)", False), ("feature(LUA)", False),
        ("version_atleast(2.4)", True), ("version_atleast(2.6)", True),
        ("version_atleast(2.7)", False), ("version_before(3.0-dev0)", True),
        ("version_before(2.6)", False), ("version_atleast(2.6-dev1)", True),
        ("!0", True), ("!!1", True), ("! defined(APP)", False),
        ("1 && 0", False), ("1 || 0", True), ("0 || 0 || 1", True),
        ("1 && 0 || 1", True), ("0 && 1 || 0 && 1", False), ("1 && (0 || 1)", True),
        ("!(1 && 0)", True), ("( 1 )", True),
    ],
)
def test_conditions_evaluate_as_haproxy_documents(condition: str, truth: bool) -> None:
    expected = ["yes"] if truth else ["no"]
    assert kept(f".if {condition}\nyes\n.else\nno\n.endif\n") == expected


def test_only_the_first_true_branch_runs() -> None:
    text = ".if 0\na\n.elif 1\nb\n.elif 1\nc\n.else\nd\n.endif\n"
    assert kept(text) == ["b"]


def test_nested_blocks_inside_a_false_block_are_skipped_without_evaluation() -> None:
    text = ".if 0\n.if bogus(\nx\n.else\ny\n.endif\n.else\nz\n.endif\n"
    assert kept(text) == ["z"]


def test_warning_and_alert_report_only_when_reached() -> None:
    directives, _ = lex('.warning "w1"\n.if 0\n.alert "never"\n.endif\n.alert "stop"\n',
                        "t.cfg", ENV)
    _, errors, warnings = apply_conditions(directives, ENV)
    assert [str(w) for w in warnings] == ["parsing [t.cfg:1] : '.warning' : 'w1'."]
    assert [str(e) for e in errors] == ["parsing [t.cfg:5] : '.alert' : 'stop'."]
