"""A reload (SIGHUP) serves renewed certificate files: the new workers load them, while a
request in flight on an old worker's TLS connection completes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.backends import Backend
from tests.support.certs import authority, https_request, served_name
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.e2e
HOST = "127.0.0.1"


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def test_sighup_picks_up_a_renewed_certificate_without_dropping_a_request_in_flight(
    proxy: Callable[..., ProxyProcess], backends: Callable[..., list[Backend]], tmp_path: Path
) -> None:
    (s1,) = backends(1)
    ca = authority()
    site = tmp_path / "site.pem"
    ca.issue("old.test", ("site.test",)).write(site)
    port = free_port()
    running = proxy(f"""
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend fe
    bind {HOST}:{port} ssl crt {site}
    default_backend app
backend app
    server s1 {s1.address}
""")
    running.wait_for_workers(2)
    assert served_name(HOST, port, "site.test")[0] == "old.test"
    in_flight: list[int] = []
    slow = threading.Thread(target=lambda: in_flight.append(
        https_request(port, "/slow?ms=1500", server_name="site.test")[0]))
    slow.start()
    _wait_until(lambda: s1.stats()["in_flight"] == 1, 5, "slow request in flight")
    ca.issue("new.test", ("site.test",)).write(site)
    running.send_signal(signal.SIGHUP)
    _wait_until(lambda: served_name(HOST, port, "site.test")[0] == "new.test", 15,
                "the renewed certificate served")
    slow.join(10)
    assert in_flight == [200]
