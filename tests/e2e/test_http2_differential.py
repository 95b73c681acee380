"""HTTP/2 (``bind ... proto h2``) through geoproxy and through haproxy 2.6 on the same
configuration and the same demo backends: the same statuses, resets, response header names,
what the server receives, and the log line's request."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.backends import Backend
from tests.support.h2_client import H2Answer, RawH2Client
from tests.support.haproxy_process import start_haproxy
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.e2e

# (path, request headers): each is sent on one connection, in this order
CASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("/", []),
    ("/status/404", []),
    ("/status/204", []),
    ("/status/304", []),
    ("/bytes/70000", []),
    ("/set-cookie?name=a&value=b", []),
    ("/headers?q=1", [("cookie", "a=1"), ("cookie", "b=2"), ("x-one", "1")]),
    ("/", [("connection", "keep-alive")]),
    ("/", [("upgrade", "websocket")]),
    ("/", [("te", "gzip")]),
    ("/", [("X-Upper", "1")]),
    ("/", [("te", "trailers")]),
    ("/x-denied", []),
]
LOG_REQUEST = re.compile(r' (\d{3}|0) \d+ .*"(?P<request>[^"]*)"$')


def config(port: int, servers: list[Backend], log: str) -> str:
    lines = "\n".join(f"  server {s.name} {s.address} cookie {s.name}" for s in servers)
    return f"""
global
{log}
defaults
  mode http
  log global
  option httplog
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend web
  bind 127.0.0.1:{port} proto h2
  http-request deny if {{ path_beg /x-denied }}
  http-response set-header Keep-Alive timeout=5
  default_backend app
backend app
  balance roundrobin
  cookie SRV insert indirect nocache
{lines}
"""


def summary(answer: H2Answer, port: int) -> tuple[object, ...]:
    names = sorted(name for name, _ in answer.headers if name != "date")
    body = answer.body
    if body.startswith(b"[["):  # /headers: what the server received, the Host aside
        received = [pair for pair in json.loads(body) if pair[0] != "host"]
        body = json.dumps(sorted(received)).encode()
    elif body.startswith(b"served by"):
        body = b"served"
    return answer.status, answer.reset, names, len(body) if len(body) > 1000 else body


def exchange(port: int) -> list[tuple[object, ...]]:
    client = RawH2Client("127.0.0.1", port, validate=False)
    try:
        return [summary(client.get(path, headers), port) for path, headers in CASES]
    finally:
        client.close()


def logged(read: Callable[[], str], count: int, port: int) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        found = [m.group("request").replace(str(port), "PORT")
                 for m in map(LOG_REQUEST.search, read().splitlines()) if m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture
def started(process_registry: ProcessRegistry, backends: Callable[..., list[Backend]],
            proxy: Callable[..., ProxyProcess], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[int, ProxyProcess, int, ManagedProcess]]:
    servers = backends(2)
    ours, theirs = free_port(), free_port()
    running = proxy(config(ours, servers, "  log stdout format raw local0"), workers=1)
    haproxy = start_haproxy(process_registry, config(theirs, servers,
                                                     "  log stdout format raw local0"),
                            tmp_path_factory.mktemp("haproxy"))
    yield ours, running, theirs, haproxy
    haproxy.stop()


def test_h2_answers_and_log_lines_match_haproxy(
        started: tuple[int, ProxyProcess, int, ManagedProcess]) -> None:
    ours, running, theirs, haproxy = started
    mine, reference = exchange(ours), exchange(theirs)
    for case, got, expected in zip(CASES, mine, reference, strict=True):
        assert got == expected, case
    # (haproxy also logs a <BADREQ> for the start-up probe, a connection without a preface)
    expected_log = logged(haproxy.output, len(CASES), theirs)[-len(CASES):]
    assert logged(running.output, len(CASES), ours)[-len(CASES):] == expected_log
    assert "GET http://127.0.0.1:PORT/headers?q=1 HTTP/2.0" in expected_log


IDLE_CONFIG = """
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 5s
  timeout http-request 2s
  timeout http-keep-alive 1s
frontend web
  bind 127.0.0.1:{port} proto h2
  http-request return status 200 content-type text/plain string ok
  default_backend app
backend app
  server never 127.0.0.1:9
"""


def idle_ends(port: int) -> list[tuple[int | None, int | None]]:
    """How an idle connection ends, after a request and before any: (GOAWAY error code,
    its last stream id), within a bound far below timeout client."""
    ends: list[tuple[int | None, int | None]] = []
    for requests in (1, 0):
        client = RawH2Client("127.0.0.1", port, timeout=15)
        try:
            for _ in range(requests):
                assert client.get("/").status == 200
            assert client.wait_closed(10)
            goaway = client.goaway
            ends.append((None, None) if goaway is None else
                        (int(goaway.error_code or 0), goaway.last_stream_id))
        finally:
            client.close()
    return ends


def test_idle_connections_end_on_keep_alive_and_request_timeouts_as_haproxys(
        process_registry: ProcessRegistry, proxy: Callable[..., ProxyProcess],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    ours, theirs = free_port(), free_port()
    proxy(IDLE_CONFIG.format(port=ours), workers=1)
    haproxy = start_haproxy(process_registry, IDLE_CONFIG.format(port=theirs),
                            tmp_path_factory.mktemp("haproxy"))
    try:
        expected = idle_ends(theirs)
        assert expected == [(0, 1), (0, 0)]
        assert idle_ends(ours) == expected
    finally:
        haproxy.stop()
