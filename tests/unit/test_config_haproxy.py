"""Differential test: geoproxy and HAProxy 2.x judge the same files the same way.

Each ``cases/config/haproxy/*.cfg`` is given to ``haproxy -c -f`` and to ``geoproxy.config.load``.
Both must agree on validity and, for files with line errors, on the lines at fault (HAProxy
reports whole-configuration errors without a line, so for those only validity is compared).
The files avoid the places where geoproxy deliberately differs (``track-sc``, 1.x timeout
names, TLS, empty arguments...). Skipped when no ``haproxy`` is installed (fails under
``.ci/run``, which installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from geoproxy.config import load
from geoproxy.errors import ConfigError
from tests.support.tools import tool_missing

CASES = sorted((Path(__file__).parent / "cases" / "config" / "haproxy").glob("*.cfg"))
HAPROXY = shutil.which("haproxy")
_ALERT_LINE = re.compile(r"\[ALERT\].*?\[[^\]\s]+:(\d+)\]")

if HAPROXY is None:
    tool_missing("haproxy is not installed")


def haproxy_verdict(case: Path) -> tuple[bool, set[int]]:
    assert HAPROXY is not None
    result = subprocess.run([HAPROXY, "-c", "-f", case.name], cwd=case.parent,
                            capture_output=True, text=True, timeout=30, check=False)
    lines = {int(m.group(1)) for m in _ALERT_LINE.finditer(result.stderr)}
    return result.returncode == 0, lines


def geoproxy_verdict(case: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, set[int]]:
    monkeypatch.chdir(case.parent)
    try:
        load(case.name, env={})
    except ConfigError as exc:
        return False, {e.location.line for e in exc.errors if e.location.line}
    return True, set()


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_geoproxy_and_haproxy_agree_on_validity_and_on_the_lines_at_fault(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    haproxy_valid, haproxy_lines = haproxy_verdict(case)
    geoproxy_valid, geoproxy_lines = geoproxy_verdict(case, monkeypatch)
    assert geoproxy_valid == haproxy_valid
    if haproxy_lines:
        assert geoproxy_lines == haproxy_lines


def test_the_differential_cases_cover_both_verdicts() -> None:
    assert any(p.stem.startswith("valid") for p in CASES)
    assert len(CASES) >= 10
