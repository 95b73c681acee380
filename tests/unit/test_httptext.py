"""The quote-aware header scanner shared by hashing and persistence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from geoproxy.httptext import find_unquoted, header_values


def test_commas_inside_quotes_do_not_split_values() -> None:
    assert list(header_values('a, "b, c", d')) == ["a", '"b, c"', "d"]


def test_an_escaped_quote_does_not_end_a_quoted_string() -> None:
    assert list(header_values(r'"a\", b", c')) == [r'"a\", b"', "c"]


def test_find_unquoted_stops_at_the_first_delimiter_of_the_window() -> None:
    text = 'x="1;2"; y=3, z'
    assert find_unquoted(text, ";,") == 7
    assert find_unquoted(text, ",", 8) == 12
    assert find_unquoted(text, ",", 0, 5) == 5


@given(st.text(max_size=60))
def test_joining_the_values_back_loses_only_spaces_around_commas(text: str) -> None:
    values = list(header_values(text))
    assert len(values) >= 1
    assert ",".join(values).replace(" ", "").replace("\t", "") == text.replace(" ", "").replace(
        "\t", ""
    )
