"""geoproxy's own HTTP/1.1 server loop (geoproxy.runtime.worker), byte for byte on raw sockets.

What it proves, as HAProxy's configuration manual and RFC 9112 say it: keep-alive and
pipelining (responses in request order), chunked request bodies de-chunked for the server,
HTTP/1.0 clients (close by default, ``Connection: keep-alive`` honoured, bodies without a
length end with the connection), ``Expect: 100-continue``, responses without Server or Date,
HEAD/204/304 without a body, HAProxy's 400/414/431 pages for malformed requests (request
smuggling shapes included: the server never sees a second request), ``timeout http-request``
(408) and ``timeout http-keep-alive`` (silent close), and a quiet cut when the server dies in
the middle of a body.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from geoproxy.demo.fleet import BackendSpec, backend_command
from geoproxy.proxy.errorpages import builtin_page
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.raw_client import RawConnection, RawResponse
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
PAGE_400 = builtin_page(400).raw
PAGE_408 = builtin_page(408).raw
PAGE_414 = builtin_page(414).raw
PAGE_431 = builtin_page(431).raw
HTTP_REQUEST_TIMEOUT = 1.0
KEEP_ALIVE_TIMEOUT = 1.0
SERVER_TIMEOUT = 0.3
PAGE_504 = builtin_page(504).raw


class DyingServer:
    """A server on a loopback port that answers every request with a head announcing 1000
    bytes, sends 10 of them, and closes: a server dying in the middle of a body."""

    def __init__(self) -> None:
        self.sock = socket.create_server((HOST, 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2.0)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.sock.close()


@dataclass
class Stack:
    port: int
    backend_port: int
    processes: list[ManagedProcess]


CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout http-request {http_request}ms
    timeout http-keep-alive {keep_alive}ms
frontend fe
    bind 127.0.0.1:{port}
    use_backend dying if {{ path_beg /dying }}
    use_backend impatient if {{ path_beg /slow }}
    use_backend refused if {{ path_beg /refused }}
    default_backend be
backend be
    server s1 127.0.0.1:{backend_port}
backend impatient
    timeout server {server_timeout}ms
    server s1 127.0.0.1:{backend_port}
backend refused
    retries 0
    server r1 127.0.0.1:{refused_port}
backend dying
    server d1 127.0.0.1:{dying_port}
"""


@pytest.fixture(scope="module")
def stack(
    process_registry: ProcessRegistry,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("worker-http")
    port, backend_port, refused_port = free_ports(3)
    dying = DyingServer()
    started: list[ManagedProcess] = []
    try:
        backend = process_registry.start(
            "backend-s1", backend_command(BackendSpec("s1", backend_port, HOST)), work, session=True
        )
        started.append(backend)
        wait_for_port(HOST, backend_port, 10.0, backend.is_running)
        config = work / "geoproxy.cfg"
        config.write_text(
            CONFIG.format(
                port=port,
                backend_port=backend_port,
                dying_port=dying.port,
                refused_port=refused_port,
                http_request=int(HTTP_REQUEST_TIMEOUT * 1000),
                keep_alive=int(KEEP_ALIVE_TIMEOUT * 1000),
                server_timeout=int(SERVER_TIMEOUT * 1000),
            )
        )
        argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(config)]
        argv += ["--workers", "1", "--redis", redis_server.url]
        proxy = process_registry.start("geoproxy", argv, work, session=True)
        started.append(proxy)
        wait_for_port(HOST, port, 30.0, proxy.is_running)
        yield Stack(port, backend_port, started)
        assert "Traceback" not in proxy.output(), proxy.output()
    finally:
        for process in reversed(started):
            process.stop()
        dying.stop()


def connect(stack: Stack) -> RawConnection:
    return RawConnection(HOST, stack.port, timeout=5.0)


def backend_requests(stack: Stack) -> int:
    with RawConnection(HOST, stack.backend_port) as connection:
        connection.send(b"GET /stats HTTP/1.1\r\nHost: s1\r\n\r\n")
        count: int = json.loads(connection.read_response().body)["requests"]
        return count


def echo(answer: RawResponse) -> dict[str, object]:
    assert answer.status == 200, answer
    result: dict[str, object] = json.loads(answer.body)
    return result


def digest(data: bytes) -> dict[str, object]:
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def field_names(answer: RawResponse) -> list[str]:
    return [name.lower() for name, _ in answer.headers]


# -- keep-alive, pipelining, framing ----------------------------------------------------------


def test_a_kept_alive_connection_serves_requests_one_after_the_other(stack: Stack) -> None:
    with connect(stack) as connection:
        for _ in range(3):
            connection.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            answer = connection.read_response()
            assert answer.head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert answer.body == b"served by s1"
        assert not connection.is_closed_by_peer(wait=0.1)


def test_responses_carry_the_servers_fields_and_no_server_or_date_of_the_proxy(
    stack: Stack,
) -> None:
    request = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
    with RawConnection(HOST, stack.backend_port) as connection:
        connection.send(request)
        direct = connection.read_response()
    with connect(stack) as connection:
        connection.send(request)
        answer = connection.read_response()
    assert field_names(answer) == field_names(direct)
    assert "server" not in field_names(answer)
    assert answer.header("x-server") == "s1"


def test_pipelined_requests_are_answered_in_order(stack: Stack) -> None:
    requests = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
        for path in ("/status/201", "/bytes/7", "/status/202", "/")
    )
    with connect(stack) as connection:
        connection.send(requests)
        answers = [connection.read_response() for _ in range(4)]
    assert [answer.status for answer in answers] == [201, 200, 202, 200]
    assert len(answers[1].body) == 7
    assert answers[3].body == b"served by s1"


def test_pipelined_requests_with_bodies_each_reach_the_server_whole(stack: Stack) -> None:
    first, second = b"a" * 70_000, b"second body"
    data = (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n%b"
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n%b"
        % (len(first), first, len(second), second)
    )
    with connect(stack) as connection:
        connection.send(data)
        assert echo(connection.read_response()) == digest(first)
        assert echo(connection.read_response()) == digest(second)


def test_a_chunked_request_body_reaches_the_server_de_chunked(stack: Stack) -> None:
    pieces = [b"hello ", b"chunked " * 1000, b"world"]
    chunked = b"".join(b"%x;ext=1\r\n%b\r\n" % (len(p), p) for p in pieces)
    with connect(stack) as connection:
        connection.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked
            + b"0\r\nX-Trailer: dropped\r\n\r\n"
        )
        assert echo(connection.read_response()) == digest(b"".join(pieces))
        connection.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert connection.read_response().body == b"served by s1"


def test_a_response_without_length_is_chunked_for_an_http11_client(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(b"GET /bytes/100000?chunked=1 HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = connection.read_response()
        assert answer.header("transfer-encoding") == "chunked"
        assert len(answer.body) == 100_000
        connection.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert connection.read_response().body == b"served by s1"


def test_an_http10_client_gets_a_close_by_default(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(b"GET / HTTP/1.0\r\n\r\n")
        answer = connection.read_response()
        assert answer.head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.head.endswith(b"\r\nconnection: close\r\n\r\n")  # last, as HAProxy
        assert answer.body == b"served by s1"
        assert connection.is_closed_by_peer()


def test_an_http10_client_asking_keep_alive_keeps_its_connection(stack: Stack) -> None:
    with connect(stack) as connection:
        for _ in range(2):
            connection.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            answer = connection.read_response()
            assert answer.header("connection") == "keep-alive"
            assert answer.body == b"served by s1"
        assert not connection.is_closed_by_peer(wait=0.1)


def test_an_http10_client_reads_a_body_without_length_until_the_close(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(b"GET /bytes/5000?chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        answer = connection.read_response()
    assert answer.header("transfer-encoding") is None
    assert answer.header("connection") == "close"
    assert len(answer.body) == 5000


def test_head_204_and_304_answers_have_no_body_and_keep_the_connection(stack: Stack) -> None:
    with connect(stack) as connection:
        for method, path, status in (
            ("HEAD", "/bytes/500", 200),
            ("GET", "/status/204", 204),
            ("GET", "/status/304", 304),
        ):
            connection.send(f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            answer = connection.read_response(method)
            assert answer.status == status
            assert answer.header("transfer-encoding") is None
        connection.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert connection.read_response().body == b"served by s1"


def test_expect_100_continue_is_answered_before_the_body_is_sent(stack: Stack) -> None:
    body = b"z" * 1000
    with connect(stack) as connection:
        connection.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = connection.read_response()
        assert interim.head == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.send(body)
        assert echo(connection.read_response()) == digest(body)


def test_an_unknown_method_token_is_forwarded(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(b"BREW / HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = connection.read_response()
    assert answer.body == b"served by s1"


def test_repeated_cookie_headers_reach_the_server_as_one_and_underscored_names_do_not(
    stack: Stack,
) -> None:
    with connect(stack) as connection:
        connection.send(
            b"GET /headers HTTP/1.1\r\nHost: test\r\nCookie: a=1\r\nCookie: b=2\r\n"
            b"X_Spoofed: 1\r\nX-Kept: 2\r\n\r\n"
        )
        headers = json.loads(connection.read_response().body)
    assert ["cookie", "a=1; b=2"] in headers
    assert ["x-kept", "2"] in headers
    assert not [name for name, _ in headers if "spoofed" in name.lower()]


# -- malformed requests and smuggling -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        b"GET / HTTP/1.1\nHost: t\n\n",
        b"GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\x00y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1 x\r\nHost: t\r\n\r\n",
        b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo st: test\r\n\r\n",
    ],
    ids=[
        "cl-then-te",
        "te-then-cl",
        "repeated-cl",
        "conflicting-cl",
        "cl-list",
        "cl-sign",
        "te-not-chunked-last",
        "te-unknown",
        "bad-chunk-size",
        "chunk-without-crlf",
        "bare-lf",
        "bare-lf-in-fields",
        "bare-cr",
        "nul-in-value",
        "space-before-colon",
        "obs-fold",
        "http2-version",
        "junk-after-version",
        "control-in-target",
        "no-target",
        "space-in-name",
    ],
)
def test_a_malformed_request_gets_haproxys_400_page_and_reaches_no_server(
    stack: Stack, raw: bytes
) -> None:
    before = backend_requests(stack)
    with connect(stack) as connection:
        connection.send(raw)
        assert connection.read_until_closed() == PAGE_400
    assert backend_requests(stack) == before


def test_a_malformed_request_behind_a_good_one_gets_400_after_the_good_answer(
    stack: Stack,
) -> None:
    with connect(stack) as connection:
        connection.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\x01\r\n\r\n")
        assert connection.read_response().body == b"served by s1"
        assert connection.read_until_closed() == PAGE_400


def test_a_too_long_request_target_gets_414(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(b"GET /" + b"a" * 16000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        assert connection.read_until_closed() == PAGE_414


@pytest.mark.parametrize(
    "fields",
    [
        b"".join(b"X-F%d: v\r\n" % i for i in range(101)),
        b"X-Big: " + b"v" * 16000 + b"\r\n",
        b"".join(b"X-F%d: %b\r\n" % (i, b"v" * 4000) for i in range(5)),
    ],
    ids=["too-many-fields", "too-large-field", "too-large-head"],
)
def test_too_many_or_too_large_header_fields_get_431(stack: Stack, fields: bytes) -> None:
    with connect(stack) as connection:
        connection.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
        assert connection.read_until_closed() == PAGE_431


# -- timeouts and cuts -------------------------------------------------------------------------


def test_a_head_not_complete_within_timeout_http_request_gets_408(stack: Stack) -> None:
    with connect(stack) as connection:
        started = time.monotonic()
        connection.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ")
        assert connection.read_until_closed() == PAGE_408
        elapsed = time.monotonic() - started
    assert HTTP_REQUEST_TIMEOUT * 0.9 <= elapsed < HTTP_REQUEST_TIMEOUT + 1.5


def test_a_head_trickling_byte_by_byte_still_gets_408_at_timeout_http_request(
    stack: Stack,
) -> None:
    with connect(stack) as connection:
        started = time.monotonic()
        for byte in b"GET / HTTP/1.1\r\nHost: t\r\n":
            try:
                connection.send(bytes([byte]))
            except OSError:
                break  # the proxy answered and closed
            time.sleep(0.05)
        assert connection.read_until_closed() == PAGE_408
        elapsed = time.monotonic() - started
    assert elapsed < HTTP_REQUEST_TIMEOUT + 1.5


def test_an_idle_kept_alive_connection_is_closed_silently(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert connection.read_response().body == b"served by s1"
        started = time.monotonic()
        assert connection.read_until_closed() == b""
        elapsed = time.monotonic() - started
    assert KEEP_ALIVE_TIMEOUT * 0.9 <= elapsed < KEEP_ALIVE_TIMEOUT + 1.5


def test_a_server_dying_mid_body_cuts_the_client_connection_quietly(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(b"GET /dying HTTP/1.1\r\nHost: t\r\n\r\n")
        data = connection.read_until_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 1000" in head.lower()
    assert body == b"x" * 10


def test_a_server_slower_than_timeout_server_gets_504_within_a_tenth_of_a_second_of_it(
    stack: Stack,
) -> None:
    with connect(stack) as connection:
        started = time.monotonic()
        connection.send(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = connection.read_response()
        elapsed = time.monotonic() - started
        assert answer.head + answer.body == PAGE_504
        connection.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert connection.read_response().body == b"served by s1"
    # the bound is timeout server + 100 ms; the rest is slack for a loaded test machine
    assert SERVER_TIMEOUT <= elapsed < SERVER_TIMEOUT + 0.1 + 0.15


def test_a_body_the_app_did_not_read_is_dropped_and_the_connection_serves_on(stack: Stack) -> None:
    body = b"q" * 200_000
    with connect(stack) as connection:
        connection.send(
            b"POST /refused HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" % (len(body), body)
        )
        assert connection.read_response().status == 503
        assert connection.read_response().body == b"served by s1"


def test_an_expect_100_request_answered_without_reading_its_body_closes_the_connection(
    stack: Stack,
) -> None:
    with connect(stack) as connection:
        connection.send(
            b"POST /refused HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        answer = connection.read_response()
        assert answer.status == 503
        assert connection.is_closed_by_peer()


def test_an_upgrade_the_server_does_not_switch_for_is_a_plain_request_then_the_next_comes(
    stack: Stack,
) -> None:
    with connect(stack) as connection:
        connection.send(
            b"GET /headers HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\n"
            b"Keep-Alive: timeout=5\r\nUpgrade: websocket\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        headers = json.loads(connection.read_response().body)
        hop = [[name, value] for name, value in headers if name in ("upgrade", "connection")]
        assert hop == [["upgrade", "websocket"], ["connection", "upgrade"]]
        assert "keep-alive" not in [name for name, _ in headers]
        assert connection.read_response().body == b"served by s1"


def test_an_http_1_0_upgrade_request_is_a_plain_request_without_its_upgrade_header(
    stack: Stack,
) -> None:
    with connect(stack) as connection:
        connection.send(
            b"GET /headers HTTP/1.0\r\nConnection: upgrade, keep-alive\r\n"
            b"Upgrade: websocket\r\n\r\nGET / HTTP/1.0\r\n\r\n"
        )
        headers = json.loads(connection.read_response().body)
        assert not [name for name, _ in headers if name.lower() in ("upgrade", "connection")]
        assert connection.read_response().body == b"served by s1"


def test_an_upgrade_request_with_a_body_is_refused(stack: Stack) -> None:
    with connect(stack) as connection:
        connection.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        assert connection.read_until_closed() == PAGE_400
