"""One external check (geoproxy.health.external) against real commands: HAProxy's statuses,
the timeout that kills the command and everything it started, and no zombie left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from geoproxy.config import parse_text
from geoproxy.health.checker import check_target
from geoproxy.health.probe import CheckResult, run_check

TIMEOUT = 0.5  # `timeout check`: a command still running then is killed


def check(tmp_path: Path, body: str, path: str = "/usr/bin:/bin",
          mode: int = 0o755, server: str = "127.0.0.1:9") -> CheckResult:
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(mode)
    config = parse_text(
        "global\n    external-check\n"
        "defaults\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
        f"    timeout check {int(TIMEOUT * 1000)}ms\n"
        "frontend f\n    bind 127.0.0.1:1\n    default_backend b\n"
        f"backend b\n    option external-check\n    external-check command {script}\n"
        f"    external-check path {path}\n    server s {server} check\n",
        "t.cfg", env={})
    backend = config.backends[0]
    return run_check(check_target(backend, backend.servers[0]))


def test_exit_zero_passes(tmp_path: Path) -> None:
    result = check(tmp_path, "exit 0\n")
    assert (result.passed, result.code, result.description) == (
        True, "PROCOK", "External check passed")


def test_any_other_status_fails_with_its_code(tmp_path: Path) -> None:
    result = check(tmp_path, "exit 3\n")
    assert (result.passed, result.code, result.description) == (
        False, "PROCERR", "External check error, code: 3")


def test_a_command_that_cannot_start_fails(tmp_path: Path) -> None:
    result = check(tmp_path, "exit 0\n", mode=0o644)
    assert (result.passed, result.code) == (False, "PROCERR")
    assert result.description.startswith("External check error: ")


def test_the_path_finds_a_bare_command_name(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "healthy"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    script = "exec healthy\n"
    assert check(tmp_path, script, path=f"{tmp_path / 'bin'}:/usr/bin:/bin").code == "PROCOK"
    assert check(tmp_path, script, path="/usr/bin:/bin").code == "PROCERR"


def _gone(pid: int) -> bool:
    """No such process, or a zombie another parent (init) has yet to reap."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_a_command_past_the_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = check(tmp_path, f"echo $$ > {pids}\nsleep 30 &\necho $! >> {pids}\nwait\n")
    assert (result.passed, result.code, result.description) == (
        False, "PROCTOUT", "External check timeout")
    shell, child = (int(word) for word in pids.read_text().split())
    with pytest.raises(ChildProcessError):  # already reaped: no zombie of ours
        os.waitpid(shell, os.WNOHANG)
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the command's own child outlived the timeout"


def test_a_host_name_is_given_as_the_address_it_resolves_to(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    body = f'echo "$3 $HAPROXY_SERVER_ADDR" > {seen}\n'
    assert check(tmp_path, body, server="localhost:9").code == "PROCOK"
    assert seen.read_text().split() == ["127.0.0.1", "127.0.0.1"]  # haproxy 2.6's, too
