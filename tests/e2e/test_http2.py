"""HTTP/2 to clients on a ``bind ... proto h2`` (h2c with prior knowledge), as HAProxy 2.6 serves
it: curl ``--http2-prior-knowledge`` for the ordinary requests, the ``h2`` package as a raw
client for what curl will not send (malformed requests, abuse, a window held at zero), and
GOAWAY when the worker stops. Servers stay HTTP/1.1 (demo backends)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame, RstStreamFrame

from tests.support.backends import Backend
from tests.support.h2_client import RawH2Client
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess
from tests.support.tools import tool_missing

pytestmark = pytest.mark.e2e

Start = Callable[..., ProxyProcess]
StartBackends = Callable[..., list[Backend]]

LOG_REQUEST = re.compile(r' (?P<status>\d{3}) \d+ .*"(?P<request>[^"]*)"$')


def config(port: int, servers: list[Backend], *, extra_global: str = "",
           client_timeout: str = "5s", extra_backend: str = "", extra_frontend: str = "") -> str:
    lines = "\n".join(f"  server {s.name} {s.address} cookie {s.name}" for s in servers)
    return f"""
global
  tune.h2.max-concurrent-streams 20
{extra_global}
defaults
  mode http
  option httplog
  timeout connect 1s
  timeout client {client_timeout}
  timeout server 5s
  timeout http-request 1s
frontend web
  bind 127.0.0.1:{port} proto h2
{extra_frontend}
  default_backend app
backend app
  balance roundrobin
  cookie SRV insert indirect nocache
{extra_backend}
{lines}
"""


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        tool_missing("curl is not installed")
    return subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "10", *args],
                          capture_output=True, text=True, timeout=15, check=False)


def backend_requests(backend: Backend) -> int:
    return int(json.loads(backend.request("GET", "/stats").body)["requests"])


def log_requests(running: ProxyProcess, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        found = [m.group("request") for m in map(LOG_REQUEST.search, running.output().splitlines())
                 if m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture
def h2_client() -> Iterator[Callable[..., RawH2Client]]:
    """Raw HTTP/2 clients, each closed when the test ends."""
    opened: list[RawH2Client] = []

    def connect(port: int, *, validate: bool = True) -> RawH2Client:
        client = RawH2Client("127.0.0.1", port, validate=validate)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


Connect = Callable[..., RawH2Client]


def serves_normally(port: int) -> None:
    client = RawH2Client("127.0.0.1", port)
    try:
        answer = client.get("/")
        assert answer.status == 200 and answer.body.startswith(b"served by")
    finally:
        client.close()


def test_curl_get_post_and_the_log_line(proxy: Start, backends: StartBackends,
                                         tmp_path: Path) -> None:
    servers = backends(2)
    port = free_port()
    running = proxy(config(port, servers), workers=1)
    got = curl("-o", "-", "-w", "\n%{http_version} %{response_code}", f"http://127.0.0.1:{port}/x")
    assert got.stdout.splitlines()[-1] == "2 200"
    assert got.stdout.startswith("served by s")
    body = bytes(range(256)) * 1200  # 300 KiB: beyond the 64 KiB windows
    upload = tmp_path / "body.bin"
    upload.write_bytes(body)
    posted = curl("--data-binary", f"@{upload}", f"http://127.0.0.1:{port}/echo")
    assert json.loads(posted.stdout)["length"] == len(body)
    # a body without content-length goes chunked to the HTTP/1.1 server
    chunked = curl("-H", "content-length:", "--data-binary", f"@{upload}",
                   f"http://127.0.0.1:{port}/echo")
    assert json.loads(chunked.stdout)["length"] == len(body)
    # HAProxy 2.6 logs an h2 request's absolute-form (:scheme://:authority:path)
    origin = f"http://127.0.0.1:{port}"
    assert log_requests(running, 3)[:3] == [
        f"GET {origin}/x HTTP/2.0", f"POST {origin}/echo HTTP/2.0", f"POST {origin}/echo HTTP/2.0"]


def test_the_persistence_cookie_set_over_h2_sticks(proxy: Start, backends: StartBackends,
        h2_client: Connect,
                                                  tmp_path: Path) -> None:
    servers = backends(2)
    port = free_port()
    proxy(config(port, servers), workers=1)
    jar = tmp_path / "jar"
    first = curl("-c", str(jar), f"http://127.0.0.1:{port}/")
    name = first.stdout.rpartition(" ")[2]
    for _ in range(4):
        again = curl("-b", str(jar), f"http://127.0.0.1:{port}/")
        assert again.stdout == f"served by {name}"
    # several cookie fields are joined with "; " (RFC 9113 8.2.3): the server's is found
    client = h2_client(port)
    answers = [client.get("/", [("cookie", "a=1"), ("cookie", f"SRV={name}")])
               for _ in range(3)]
    client.close()
    assert {a.header("x-server") for a in answers} == {name}


def test_concurrent_streams_on_one_connection_are_answered_by_the_backends(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(2)
    port = free_port()
    proxy(config(port, servers), workers=1)
    client = h2_client(port)
    streams = [client.request("GET", "/slow?ms=300") for _ in range(10)]
    answers = client.wait(streams)
    client.close()
    assert [a.status for a in answers] == [200] * 10
    assert {a.header("x-server") for a in answers} == {"s1", "s2"}
    assert sum(backend_requests(s) for s in servers) == 10


def test_malformed_requests_are_reset_and_connection_headers_dropped(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    proxy(config(port, servers, extra_backend="  http-response set-header Keep-Alive timeout=5"
                  "\n  http-response set-header Connection keep-alive"), workers=1)
    client = h2_client(port, validate=False)
    bad = [client.request("GET", "/", [("connection", "keep-alive")]),
           client.request("GET", "/", [("transfer-encoding", "chunked")]),
           client.request("GET", "/", [("te", "gzip")]),
           client.request("GET", "/", [("X-Upper", "1")])]
    assert [a.reset for a in client.wait(bad)] == [ErrorCodes.PROTOCOL_ERROR] * 4
    good = client.get("/", [("te", "trailers")])
    client.close()
    assert good.status == 200
    names = {name for name, _ in good.headers}
    assert "keep-alive" not in names and "connection" not in names
    assert backend_requests(servers[0]) == 1


def test_rapid_reset_is_cut_with_enhance_your_calm(proxy: Start,
                                                   backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    running = proxy(config(port, servers), workers=1)
    (worker,) = running.wait_for_workers(1)
    client = h2_client(port)
    sent = 0
    try:
        while not client.closed and sent < 2000:  # the bound is 2 x 20 cancelled streams
            for _ in range(10):
                stream_id = client.request("GET", "/slow?ms=2000", end=True)
                client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
                sent += 1
            client.flush()
    except OSError:
        pass  # the server closed while we sent
    assert client.wait_closed(10)
    assert client.goaway is not None
    assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert sent < 2000
    time.sleep(0.5)
    # the cancelled streams did not keep the server busy: few (or none) reached it
    assert backend_requests(servers[0]) <= 20
    assert running.wait_for_workers(1) == [worker]
    serves_normally(port)
    assert "Traceback" not in running.output()


def test_a_continuation_flood_closes_the_connection(proxy: Start,
                                                    backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    running = proxy(config(port, servers), workers=1)
    (worker,) = running.wait_for_workers(1)
    client = h2_client(port)
    encoder = Encoder()
    block = encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                            (":authority", "x")])
    client.send_raw(HeadersFrame(1, data=block).serialize())  # no END_HEADERS
    junk = Encoder().encode([("x-flood", "v" * 15000)])  # frames of ~15 KB: 64 of them is 1 MB
    try:
        for _ in range(2000):
            client.send_raw(ContinuationFrame(1, data=junk).serialize())
    except OSError:
        pass  # the server closed while we flooded
    assert client.wait_closed(10)
    # past the header list size (15360 bytes), before h2's own bound of 64 frames
    assert client.goaway is not None
    assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert running.wait_for_workers(1) == [worker]
    serves_normally(port)
    assert "Traceback" not in running.output()


def test_an_hpack_bomb_is_refused(proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    running = proxy(config(port, servers), workers=1)
    (worker,) = running.wait_for_workers(1)
    client = h2_client(port, validate=False)
    encoder = Encoder()
    big = ("x-bomb", "b" * 3000)
    # the first copy enters the dynamic table; each of the next 199 is one byte: ~3 KB that
    # decode to ~600 KB
    block = encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                            (":authority", "x")] + [big] * 200)
    assert len(block) < 4000
    client.send_raw(HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert client.wait_closed(10)
    assert client.goaway is not None
    assert client.goaway.error_code in (ErrorCodes.ENHANCE_YOUR_CALM,
                                        ErrorCodes.COMPRESSION_ERROR)
    assert backend_requests(servers[0]) == 0
    assert running.wait_for_workers(1) == [worker]
    serves_normally(port)
    assert "Traceback" not in running.output()


def test_a_window_held_at_zero_is_bounded_and_others_are_served(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    running = proxy(config(port, servers, client_timeout="2s"), workers=1)
    (worker,) = running.wait_for_workers(1)
    client = h2_client(port)
    client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 0})
    client.flush()
    stream = client.request("GET", "/bytes/200000")
    serves_normally(port)  # meanwhile, the worker serves others
    (answer,) = client.wait([stream], timeout=10)
    assert answer.status == 200 and answer.body == b""
    assert answer.reset is not None  # the stream gave up after timeout client
    assert client.wait_closed(10)  # then the idle connection closed
    assert running.wait_for_workers(1) == [worker]
    serves_normally(port)
    assert "Traceback" not in running.output()


def test_an_unfinished_header_block_times_out(proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    proxy(config(port, servers), workers=1)
    client = h2_client(port)
    block = Encoder().encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    client.send_raw(HeadersFrame(1, data=block).serialize())  # and never END_HEADERS
    started = time.monotonic()
    assert client.wait_closed(10)
    assert time.monotonic() - started < 9  # timeout http-request (1s), not the test's bound
    serves_normally(port)


def test_sigterm_sends_goaway_and_the_streams_in_flight_finish(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    running = proxy(config(port, servers), workers=1)
    client = h2_client(port)
    assert client.get("/").status == 200
    slow = client.request("GET", "/slow?ms=2500")
    time.sleep(0.3)
    running.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while client.goaway is None and not client.closed and time.monotonic() < deadline:
        client.receive_once()
    assert client.goaway is not None
    assert client.goaway.error_code == ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == slow
    (answer,) = client.wait([slow])
    assert answer.status == 200 and answer.body.endswith(b"after 2500 ms")
    assert client.wait_closed(10)
    assert running.process.process.wait(timeout=15) == 0


def test_a_cancelled_stream_in_the_app_stops_its_backend_wait(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    (server,) = backends(1)
    port = free_port()
    # one request at a time on the server; a second one would wait in the queue, then get a
    # 503 after timeout queue, if the cancelled one kept its place
    proxy(config(port, [server], extra_backend="  timeout queue 1s").replace(
        f"cookie {server.name}", f"cookie {server.name} maxconn 1"), workers=1)
    client = h2_client(port)
    stream = client.request("GET", "/slow?ms=4000")
    time.sleep(0.5)  # the request is at the server by now
    client.send_raw(RstStreamFrame(stream, error_code=ErrorCodes.CANCEL).serialize())
    assert client.get("/").status == 200  # the connection serves on, the server's slot free


def test_a_reload_sends_goaway_and_new_connections_are_served(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    running = proxy(config(port, servers), workers=1)
    (old_worker,) = running.wait_for_workers(1)
    client = h2_client(port)
    slow = client.request("GET", "/slow?ms=2000")
    time.sleep(0.3)
    running.send_signal(signal.SIGHUP)
    (answer,) = client.wait([slow], timeout=15)
    assert answer.status == 200  # the old worker finished it
    assert client.goaway is not None and client.goaway.error_code == ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == slow
    assert client.wait_closed(15)
    deadline = time.monotonic() + 15
    while running.wait_for_workers(1) == [old_worker] and time.monotonic() < deadline:
        time.sleep(0.2)
    serves_normally(port)


def test_streams_past_max_concurrent_streams_are_refused_alone(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    proxy(config(port, servers), workers=1)  # tune.h2.max-concurrent-streams 20
    client = h2_client(port)
    streams = [client.request("GET", "/slow?ms=500") for _ in range(25)]
    answers = client.wait(streams)
    assert [a.status for a in answers[:20]] == [200] * 20
    assert [a.reset for a in answers[20:]] == [ErrorCodes.REFUSED_STREAM] * 5
    assert client.get("/").status == 200  # a stream error, not the connection's


def test_bodies_the_app_never_reads_hand_their_window_back(
        proxy: Start, backends: StartBackends,
        h2_client: Connect) -> None:
    servers = backends(1)
    port = free_port()
    # one stream at a time: the connection's window is one stream's, 64 KiB
    proxy(config(port, servers, extra_global="  tune.h2.max-concurrent-streams 1",
                 extra_frontend="  http-request deny if { path_beg /denied }"), workers=1)
    client = h2_client(port)
    body = b"x" * 60000  # within a stream's window: sent whole, never read by the app
    for _ in range(4):  # 240,000 bytes unread: had they kept the window, this would stall
        (denied,) = client.wait([client.request("POST", "/denied", body=body)])
        assert denied.status == 403
    echoed = client.wait([client.request("POST", "/echo", body=body * 3)])[0]
    assert echoed.status == 200 and json.loads(echoed.body)["length"] == len(body) * 3
