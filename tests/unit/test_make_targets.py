"""The README's two commands, as make would run them from a fresh clone (``make -n``, which
runs nothing): ``make run`` installs geoproxy with its runtime dependencies only, ``make test``
with the test extra, and pytest shows the reason of every skip by default."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

from tests.support.tools import tool_missing

ROOT = Path(__file__).resolve().parents[2]


def _installs(target: str, venv: Path) -> list[str]:
    if shutil.which("make") is None:
        tool_missing("make is not installed")
    dry = subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True)
    return [line for line in dry.stdout.splitlines()
            if " pip install " in line and "--upgrade pip" not in line]


def test_make_run_installs_only_the_runtime_dependencies(tmp_path: Path) -> None:
    assert _installs("run", tmp_path / "v") == [
        f"{tmp_path}/v/bin/python -m pip install --quiet -e ."
    ]


def test_make_test_installs_the_test_extra(tmp_path: Path) -> None:
    assert _installs("test", tmp_path / "v") == [
        f"{tmp_path}/v/bin/python -m pip install --quiet -e '.[test]'"
    ]


def test_pytest_reports_the_reason_of_each_skip_by_default() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "-rs" in settings["tool"]["pytest"]["ini_options"]["addopts"].split()
