"""HAProxy's time and size formats (configuration manual, section 2.5)."""

from __future__ import annotations

import pytest

from geoproxy.config.units import TimeUnit, UnitError, parse_size, parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5000", 5.0),
        ("0", 0.0),
        ("100ms", 0.1),
        ("250us", 0.00025),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("2147483647", 2147483.647),
    ],
)
def test_times_are_read_in_seconds_with_a_bare_number_in_milliseconds(
    text: str, seconds: float
) -> None:
    assert parse_time(text) == pytest.approx(seconds)


def test_a_bare_number_is_in_seconds_where_the_keyword_says_so() -> None:
    assert parse_time("30", TimeUnit.S) == 30.0
    assert parse_time("30m", TimeUnit.S) == 1800.0


@pytest.mark.parametrize(
    ("text", "character"),
    [("5x", "x"), ("-1", "-"), ("1.5s", "."), ("5sx", "x"), ("5 s", " "), ("ms", "m"),
     ("5S", "S")],
)
def test_a_time_with_an_unexpected_character_names_it(text: str, character: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_time(text)
    assert caught.value.describe("timeout client") == (
        f"unexpected character '{character}' in 'timeout client'"
    )


def test_a_time_beyond_haproxys_32_bit_timer_overflows() -> None:
    with pytest.raises(UnitError) as caught:
        parse_time("25d")
    assert caught.value.describe("timeout tunnel") == (
        "timer overflow in argument '25d' to 'timeout tunnel' "
        "(maximum value is 2147483647 ms or ~24.8 days)"
    )


def test_the_overflow_limit_of_a_seconds_keyword_is_in_seconds() -> None:
    assert parse_time("24855d", TimeUnit.S) == 24855 * 86400.0
    with pytest.raises(UnitError) as caught:
        parse_time("24856d", TimeUnit.S)
    assert "2147483647 s or ~68 years" in caught.value.describe("maxidle")


def test_an_empty_time_says_a_value_was_expected() -> None:
    with pytest.raises(UnitError) as caught:
        parse_time("")
    assert caught.value.describe("inter") == "'inter' expects a value"


@pytest.mark.parametrize(
    ("text", "size"),
    [("100", 100), ("1k", 1024), ("1K", 1024), ("2m", 2 * 1024**2), ("1g", 1024**3)],
)
def test_sizes_take_binary_suffixes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "character"), [("1x", "x"), ("k", "k"), ("1kb", "b")])
def test_a_size_with_an_unexpected_character_names_it(text: str, character: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_size(text)
    assert caught.value.character == character
