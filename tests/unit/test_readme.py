"""The README documents every Redis key geoproxy uses, exactly as geoproxy/state/keys.py
defines them, so that an operator with redis-cli reads the truth."""

from __future__ import annotations

from pathlib import Path

from geoproxy.state.keys import KEY_TABLE

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_key_of_the_schema_is_a_row_of_the_readme_key_table() -> None:
    text = README.read_text()
    for pattern, kind, meaning in KEY_TABLE:
        assert f"| `{pattern}` | {kind} | {meaning} |" in text, pattern


def test_the_readme_names_the_two_set_up_commands() -> None:
    text = README.read_text()
    assert "make run" in text and "make test" in text
