"""A second ``geoproxy run`` beside a running one, on the default embedded Redis.

HAProxy management guide, section 4 (a process that cannot bind its listeners reports each one
and exits, "Binding [file:line] for frontend NAME: cannot bind socket", leaving the running
process alone), and DESIGN.md "The embedded default" (the private Redis belongs to the run that
started it). Also: a quiet configuration (a stats-only ``listen`` section as in the README,
which has no server) writes nothing while no request comes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backends import Backend, start_backends
from tests.support.http_client import get
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry

pytestmark = pytest.mark.e2e

HEARTBEAT_PERIOD = 0.5  # geoproxy.state.redis_store's, seconds

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend www
    bind 127.0.0.1:{web}
    default_backend app

backend app
    server s1 {s1} check inter 200ms

listen stats
    bind 127.0.0.1:{stats}
    stats uri /
"""
WWW_BIND_LINE = 8


class Instance:
    """A ``geoproxy run`` on the embedded Redis of the module's runtime directory."""

    def __init__(self, registry: ProcessRegistry, directory: Path, env: dict[str, str],
                 config: str) -> None:
        directory.mkdir()
        self.config_path = directory / "geoproxy.cfg"
        self.config_path.write_text(config)
        argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(self.config_path)]
        self.process: ManagedProcess = registry.start(
            "geoproxy", argv, directory, env=env, session=True
        )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of every run here: a runtime directory of the module's own."""
    base = tmp_path_factory.mktemp("rt")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(base)}
    env.pop("GEOPROXY_REDIS_URL", None)
    yield env


@pytest.fixture(scope="module")
def first(
    process_registry: ProcessRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    runtime: dict[str, str],
) -> Iterator[tuple[Instance, tuple[int, int], Backend]]:
    directory = tmp_path_factory.mktemp("first")
    (s1,) = start_backends(process_registry, directory / "backends", 1, None, outlive_test=True)
    web, stats = free_ports(2)
    running = Instance(process_registry, directory / "run", runtime,
                       CONFIG.format(web=web, stats=stats, s1=s1.address))
    try:
        for port in (web, stats):
            wait_for_port("127.0.0.1", port, 30, running.process.is_running)
        running.process.wait_for_output("Listening at: ", 30)
        yield running, (web, stats), s1
    finally:
        running.process.stop()
        s1.stop()


def _socket(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / f"geoproxy-{os.getuid()}" / "redis.sock"


def _state(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geoproxy", "state"], env=env,
                          capture_output=True, text=True, timeout=30)


def _booted(process: ManagedProcess, workers: int = 2, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while process.output().count("Booting worker with pid") < workers:
        assert process.is_running() and time.monotonic() < deadline, process.output()
        time.sleep(0.05)


def test_a_quiet_configuration_writes_nothing_while_no_request_comes(
    first: tuple[Instance, tuple[int, int], Backend],
) -> None:
    running = first[0].process
    _booted(running)
    time.sleep(2 * HEARTBEAT_PERIOD)  # the workers' first heartbeats and health checks
    before = running.output()
    time.sleep(4 * HEARTBEAT_PERIOD)
    assert running.output() == before
    assert "missing from Redis" not in before


def test_a_second_run_on_a_port_in_use_says_so_at_once_and_exits_1(
    first: tuple[Instance, tuple[int, int], Backend],
    runtime: dict[str, str],
    tmp_path: Path,
) -> None:
    running, (web, stats), _ = first
    config = tmp_path / "geoproxy.cfg"
    config.write_text(running.config_path.read_text())
    second = subprocess.run([sys.executable, "-m", "geoproxy", "run", "-c", str(config)],
                            env=runtime, capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert second.stderr.splitlines() == [
        f"[ALERT] Binding [{config}:{WWW_BIND_LINE}] for frontend 'www': cannot bind "
        f"127.0.0.1:{web}: Address already in use",
        f"[ALERT] Binding [{config}:{WWW_BIND_LINE + 7}] for proxy 'stats': cannot bind "
        f"127.0.0.1:{stats}: Address already in use",
        "[ALERT] some listeners failed to start: geoproxy does not start",
    ]
    assert second.stdout == ""  # no "listening" line, no embedded Redis, no gunicorn
    # the first one serves on, and its Redis is still where `geoproxy state` looks
    assert running.process.is_running()
    assert get(web, "/").header("X-Server") == "s1"
    assert _socket(runtime).exists()
    state = _state(runtime)
    assert state.returncode == 0 and state.stdout.startswith("backend app (2 live workers"), state


def test_a_second_run_elsewhere_has_its_own_redis_and_removes_only_its_own_files(
    first: tuple[Instance, tuple[int, int], Backend],
    runtime: dict[str, str],
    process_registry: ProcessRegistry,
    tmp_path: Path,
) -> None:
    running, (web, _), s1 = first
    other_web, other_stats = free_ports(2)
    second = Instance(process_registry, tmp_path / "second", runtime,
                      CONFIG.format(web=other_web, stats=other_stats, s1=s1.address)
                      .replace("backend app", "backend other"))
    try:
        wait_for_port("127.0.0.1", other_web, 30, second.process.is_running)
        second.process.wait_for_output("Listening at: ", 30)  # its Redis runs by then
        own = _socket(runtime).parent / f"run-{second.process.pid}"
        assert (
            f"the embedded Redis in {own.parent} belongs to another geoproxy run "
            f"(pid {running.process.pid}): this one starts its own in {own}"
        ) in second.process.output()
        assert (own / "redis.sock").exists()
        assert get(other_web, "/").header("X-Server") == "s1"
        # `geoproxy state` still asks the first run's Redis, which knows nothing of "other"
        assert "backend other" not in _state(runtime).stdout
        os.kill(second.process.pid, signal.SIGTERM)
        assert second.process.process.wait(timeout=20) == 0
    finally:
        second.process.stop()
    assert not own.exists()
    assert _socket(runtime).exists()
    assert get(web, "/").header("X-Server") == "s1"
    state = _state(runtime)
    assert state.returncode == 0 and state.stdout.startswith("backend app (2 live workers"), state
