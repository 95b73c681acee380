"""Data-driven configuration cases, in the style of Caddy's caddyfile_adapt tests and
gunicorn's requests/valid|invalid.

- ``cases/config/invalid/NAME.cfg`` must be refused with exactly the errors written in
  ``NAME.error`` (one ``parsing [file:line] : ...`` per line, in order).
- ``cases/config/valid/NAME.cfg`` must load, and ``geoproxy.config.dump`` of the result
  (warnings included) must equal ``NAME.expected``.

Each file is read from its own directory, so relative errorfiles resolve there. To rewrite
the golden files after an intended change, run with GEOPROXY_REGOLD=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geoproxy.config import load
from geoproxy.config.dump import dump
from geoproxy.errors import ConfigError

CASES = Path(__file__).parent / "cases" / "config"
ENV = {"APP_NAME": "demo", "APP_PORT": "9001", "PATHS": "/a /b"}
REGOLD = os.environ.get("GEOPROXY_REGOLD") == "1"


def cases(kind: str) -> list[Path]:
    return sorted((CASES / kind).glob("*.cfg"))


@pytest.mark.parametrize("case", cases("invalid"), ids=lambda p: p.stem)
def test_an_invalid_configuration_is_refused_with_exactly_the_expected_errors(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(case.parent)
    with pytest.raises(ConfigError) as caught:
        load(case.name, env=ENV)
    actual = "".join(f"{error}\n" for error in caught.value.errors)
    expected_file = case.with_suffix(".error")
    if REGOLD:
        expected_file.write_text(actual)
    assert actual == expected_file.read_text()


@pytest.mark.parametrize("case", cases("valid"), ids=lambda p: p.stem)
def test_a_valid_configuration_parses_to_its_golden_model(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(case.parent)
    actual = dump(load(case.name, env=ENV), base=".")
    expected_file = case.with_suffix(".expected")
    if REGOLD:
        expected_file.write_text(actual)
    assert actual == expected_file.read_text()


def test_every_case_has_its_expectation_file() -> None:
    missing = [p.name for p in cases("invalid") if not p.with_suffix(".error").exists()]
    missing += [p.name for p in cases("valid") if not p.with_suffix(".expected").exists()]
    assert missing == []
    assert len(cases("invalid")) > 20 and len(cases("valid")) > 10


@pytest.mark.parametrize("case", cases("invalid"), ids=lambda p: p.stem)
def test_every_error_names_its_file_line_and_keyword(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN.md invariant 8: a configuration error names the file, the line and the keyword."""
    monkeypatch.chdir(case.parent)
    with pytest.raises(ConfigError) as caught:
        load(case.name, env=ENV)
    for error in caught.value.errors:
        if error.location.line == 0:  # about the whole file (no frontend): no line to name
            assert str(error).startswith(f"{case.name} "), str(error)
            continue
        assert str(error).startswith(f"parsing [{case.name}:{error.location.line}] : ")
        if error.keyword:  # "" only for a line that could not be cut into words
            assert error.keyword.lower() in error.message.lower(), str(error)


@pytest.mark.parametrize("case", cases("valid"), ids=lambda p: p.stem)
def test_every_warning_names_its_keyword(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(case.parent)
    for warning in load(case.name, env=ENV).warnings:
        assert warning.keyword.lower() in warning.message.lower(), str(warning)
