"""``geoproxy top``: the fleet in a terminal, from Redis alone, refreshed live (as ``hatop``).

The live tests run ``geoproxy top`` on a pseudo-terminal, as an operator's shell would: one
presses ``q`` and expects it to quit, the other changes a server's state meanwhile and reads
the change in the frames that follow. Every frontend shows, a stats-only listener's included,
whose BACKEND is UP as on the stats page.
"""

from __future__ import annotations

import http.client
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import Stack
from tests.support.ports import free_ports

pytestmark = pytest.mark.e2e

CONFIG = """
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{web}
    default_backend app

backend app
    server s1 {s1}
    server s2 {s2} backup

frontend idle
    bind 127.0.0.1:{idle}
    default_backend app

listen stats
    bind 127.0.0.1:{stats}
    stats uri /
"""
ENV = {**os.environ, "COLUMNS": "200", "LINES": "50", "TERM": "xterm"}


@pytest.fixture(scope="module")
def redis_url(module_stack: Stack) -> str:
    """The module's Redis, where its one proxy runs (the tests read it in file order)."""
    s1, s2 = module_stack.backends(2)
    web, idle, stats = free_ports(3)
    module_stack.proxy(CONFIG.format(web=web, idle=idle, stats=stats, s1=s1.address,
                                     s2=s2.address))
    for _ in range(5):
        connection = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
        connection.request("GET", "/")
        assert connection.getresponse().read() == b"served by s1"
        connection.close()
    return module_stack.redis_url


def _geoproxy(*args: str) -> list[str]:
    return [sys.executable, "-m", "geoproxy", *args]


def _rows(output: str) -> dict[str, list[list[str]]]:
    """Each table's rows (title -> cells of its lines after the header)."""
    tables: dict[str, list[list[str]]] = {}
    rows: list[list[str]] = []
    for line in output.splitlines()[1:]:
        cells = line.split()
        if len(cells) == 1 and not line.startswith(" "):
            rows = tables.setdefault(cells[0], [])
        elif cells and cells[0] not in ("name",) and not cells[0].startswith("─"):
            rows.append(cells)
    return tables


def test_top_once_prints_every_frontend_server_and_backend_with_its_state_and_figures(
    redis_url: str,
) -> None:
    for _ in range(20):  # statistics reach Redis at each worker's next flush (once a second)
        done = subprocess.run(_geoproxy("top", "--once", "--redis", redis_url), env=ENV,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        app = _rows(done.stdout).get("app", [])
        if app and "5" in app[0]:
            break
        time.sleep(0.25)
    lines = done.stdout.splitlines()
    assert "live hosts:" in lines[0] and "(2 workers)" in lines[0]
    assert "q to quit" not in lines[0]  # --once waits for no key
    tables = _rows(done.stdout)
    assert sorted(tables) == ["app", "idle", "stats", "web"]
    s1 = tables["app"][0]
    assert s1[:3] == ["s1", "no", "check"] and "5" in s1
    assert [row[:2] for row in tables["app"]][-1] == ["BACKEND", "UP"]
    # frontends show with or without traffic; the stats-only listener's BACKEND is UP
    assert [row[:2] for row in tables["web"]] == [["FRONTEND", "OPEN"]]
    assert [row[:2] for row in tables["idle"]] == [["FRONTEND", "OPEN"]]
    assert [row[:2] for row in tables["stats"]] == [["FRONTEND", "OPEN"], ["BACKEND", "UP"]]


def test_top_quits_when_q_is_pressed_and_says_so_on_screen(redis_url: str) -> None:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        _geoproxy("top", "--redis", redis_url, "--interval", "0.25"),
        stdin=terminal, stdout=terminal, stderr=terminal, env=ENV, close_fds=True,
    )
    os.close(terminal)
    seen = b""
    pressed = False
    try:
        deadline = time.monotonic() + 20
        # read all it writes (a full terminal would block it), until it exits or time is up
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(controller, 65536)
                except OSError:  # the terminal closed: top exited
                    break
            if not pressed and b"press q to quit" in seen:
                os.write(controller, b"q")
                pressed = True
        assert pressed, seen[-2000:]
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(controller)


def test_top_refreshes_live_and_shows_an_operator_change_within_a_second(
    redis_url: str,
) -> None:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        _geoproxy("top", "--redis", redis_url, "--interval", "0.25", "--count", "16"),
        stdin=terminal, stdout=terminal, stderr=terminal, env=ENV, close_fds=True,
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 20
        changed = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: top exited
                    break
                seen += chunk
            if not changed and b"s1" in seen:
                subprocess.run(_geoproxy("set", "server", "app/s1", "state", "maint", "--redis",
                                         redis_url), env=ENV, check=True, timeout=30)
                mark = len(seen)
                changed = True
            if process.poll() is not None and not ready:
                break
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(controller)
    assert changed
    before, after = seen[:mark], seen[mark:]
    assert b"MAINT" not in before and b"MAINT" in after
