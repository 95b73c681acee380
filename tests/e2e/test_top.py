"""``geoproxy top``: the fleet in a terminal, from Redis alone, refreshed live (as ``hatop``).

The live test runs ``geoproxy top`` on a pseudo-terminal, as an operator's shell would, changes
a server's state meanwhile, and reads the change in the frames that follow.
"""

from __future__ import annotations

import http.client
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.support.backends import Backend
from tests.support.ports import free_ports
from tests.support.proxy_process import ProxyProcess

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
"""
ENV = {**os.environ, "COLUMNS": "200", "LINES": "50", "TERM": "xterm"}


@pytest.fixture
def fleet(backends: Callable[..., list[Backend]], proxy: Callable[..., ProxyProcess]) -> int:
    s1, s2 = backends(2)
    (web,) = free_ports(1)
    proxy(CONFIG.format(web=web, s1=s1.address, s2=s2.address))
    for _ in range(5):
        connection = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
        connection.request("GET", "/")
        assert connection.getresponse().read() == b"served by s1"
        connection.close()
    return web


def _geoproxy(*args: str) -> list[str]:
    return [sys.executable, "-m", "geoproxy", *args]


def test_top_once_prints_every_server_with_its_state_and_figures(
    fleet: int, redis_url: str
) -> None:
    time.sleep(0.2)  # the statistics flush (10 ms batches)
    done = subprocess.run(_geoproxy("top", "--once", "--redis", redis_url), env=ENV,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "live hosts:" in lines[0] and "(2 workers)" in lines[0]
    s1 = next(line for line in lines if line.split()[:1] == ["s1"])
    assert s1.split()[1:3] == ["no", "check"] and " 5 " in s1
    assert any(line.split()[:1] == ["BACKEND"] for line in lines)


def test_top_refreshes_live_and_shows_an_operator_change_within_a_second(
    fleet: int, redis_url: str
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
