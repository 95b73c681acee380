"""Cutting lines into words as HAProxy 2.x does (manual sections 2.2 and 2.3).

Every expected word below was checked against ``haproxy -c`` 2.6, which echoes an unknown
keyword back: ``unknown keyword 'a b' in 'global' section``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoproxy.config.lexer import Directive, lex
from geoproxy.config.model import Location

ENV = {"HOME": "/root", "LIST": "a b  c", "EMPTY": ""}


def words(line: str) -> tuple[str, ...]:
    directives, errors = lex(line, "t.cfg", ENV)
    assert errors == []
    assert len(directives) == 1
    return directives[0].words


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  server s1 127.0.0.1:80  ", ("server", "s1", "127.0.0.1:80")),
        ("\tmode\t\thttp", ("mode", "http")),
        ("a\\ b", ("a b",)),
        ('"c d"', ("c d",)),
        ("'e f'", ("e f",)),
        ("g\\#h", ("g#h",)),
        ("i\\x41j", ("iAj",)),
        ("k\\qm", ("k\\qm",)),
        ('"n\\$o"', ("n$o",)),
        ("p\\$q", ("p\\$q",)),
        ('"r$HOME"', ("r/root",)),
        ('"s${NOPE}t"', ("st",)),
        ('"u${NOPE-dflt}v"', ("udfltv",)),
        ('"u${EMPTY-dflt}v"', ("uv",)),
        ("w$HOME", ("w$HOME",)),
        ("'x$HOME'", ("x$HOME",)),
        ("y\"z\"'w'", ("yzw",)),
        ('"a\\"b"', ('a"b',)),
        ('\\"quote', ('"quote',)),
        ('"x\\ty"', ("x\ty",)),
        ("x\\'y", ("x'y",)),
        ("'a\\b'", ("a\\b",)),
        ('"#not a comment"', ("#not a comment",)),
        ("acl a path /x # a comment", ("acl", "a", "path", "/x")),
        ("acl a path /x#glued", ("acl", "a", "path", "/x")),
        ('x "${LIST[*]}" y', ("x", "a", "b", "c", "y")),
        ('x "p${LIST[*]}q" y', ("x", "pa", "b", "cq", "y")),
        ('x "${NOPE[*]}" y', ("x", "y")),
        ("path_reg ^/(a|b)\\d+$", ("path_reg", "^/(a|b)\\d+$")),
    ],
)
def test_words_are_cut_as_haproxy_cuts_them(line: str, expected: tuple[str, ...]) -> None:
    assert words(line) == expected


def test_pseudo_variables_name_the_file_the_line_and_the_section() -> None:
    directives, _ = lex('backend app\n  x "$.FILE:$.LINE" "$.SECTION"\n', "t.cfg", {})
    assert directives[1].words == ("x", "t.cfg:2", "app")


def test_blank_and_comment_lines_produce_nothing_and_lines_keep_their_numbers() -> None:
    text = "global\n\n   \n# comment\n  # indented comment\n  maxconn 10\r\n"
    directives, errors = lex(text, "t.cfg", {})
    assert errors == []
    assert [(d.location.line, d.words) for d in directives] == [
        (1, ("global",)),
        (6, ("maxconn", "10")),
    ]


def test_directive_columns_point_at_each_word() -> None:
    directives, _ = lex('  bind  "a b" c', "t.cfg", {})
    assert directives[0].columns == (3, 9, 15)


def test_missing_arguments_read_as_empty_like_haproxys_args() -> None:
    directive = Directive(Location("t.cfg", 1), "timeout", ("client",))
    assert directive.arg(0) == "client"
    assert directive.arg(1) == ""


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('  "unterminated', 'unmatched quote at position 3:\n  "unterminated\n  ^'),
        ("  'unterminated", "unmatched quote at position 3:\n  'unterminated\n  ^"),
        ('  "${HOME"',
         'unmatched brace in environment variable name at position 5:\n  "${HOME"\n    ^'),
        ('  "$1abc"',
         'forbidden first char in environment variable name at position 5:\n  "$1abc"\n    ^'),
        ("  \\xZZ", "truncated or invalid hexadecimal sequence at position 3:\n  \\xZZ\n  ^"),
        ('  "$.NOPE"', "unknown pseudo-variable '.NOPE' at position 5:\n  \"$.NOPE\"\n    ^"),
        ('  "${LIST[x]}"',
         "truncated or invalid word expansion sequence at position 10:\n"
         '  "${LIST[x]}"\n         ^'),
    ],
)
def test_lexical_errors_give_the_position_and_show_the_line(line: str, message: str) -> None:
    directives, errors = lex("global\n" + line, "t.cfg", ENV)
    assert [d.keyword for d in directives] == ["global"]
    assert [str(e) for e in errors] == [f"parsing [t.cfg:2] : {message}"]


def test_an_empty_argument_is_an_error_because_haproxy_would_stop_reading_there() -> None:
    directives, errors = lex('  maxconn "" 5\n  x "$NOPE" y\n', "t.cfg", {})
    assert directives == []
    assert [str(e) for e in errors] == [
        "parsing [t.cfg:1] : 'maxconn' : argument number 1 at position 11 is empty and marks "
        "the end of the argument list",
        "parsing [t.cfg:2] : 'x' : argument number 1 at position 5 is empty and marks the end "
        "of the argument list",
    ]


def test_every_lexical_error_is_reported_not_only_the_first() -> None:
    _, errors = lex('"a\n"b\n\\x\n', "t.cfg", {})
    assert [e.location.line for e in errors] == [1, 2, 3]


_WORD = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n\r'"),
    min_size=1, max_size=12)


@given(st.lists(_WORD, min_size=1, max_size=6))
def test_any_words_strongly_quoted_come_back_unchanged(words: list[str]) -> None:
    line = " ".join(f"'{word}'" for word in words)
    directives, errors = lex(line, "t.cfg", {})
    assert errors == []
    assert list(directives[0].words) == words


def _escaped(word: str) -> str:
    special = {" ": "\\ ", "\t": "\\t", "\\": "\\\\", "#": "\\#", "'": "\\'", '"': '\\"'}
    return "".join(special.get(char, char) for char in word)


@given(st.lists(_WORD, min_size=1, max_size=6))
def test_any_words_backslash_escaped_come_back_unchanged(words: list[str]) -> None:
    line = " ".join(_escaped(word) for word in words)
    directives, errors = lex(line, "t.cfg", {})
    assert errors == []
    assert list(directives[0].words) == words
