"""Hostile and broken input, over raw sockets, through one geoproxy worker.

What it proves (issue 6; HAProxy manual: ``tune.bufsize``, ``tune.http.maxhdr``, ``timeout
http-request``, ``cookie``; RFC 9112 sections 3.2, 6 and 7.1): every request smuggling shape
(Content-Length with Transfer-Encoding, repeated or listed Content-Length, obfuscated
Transfer-Encoding, invalid chunk sizes, bare LF or CR, NUL), an oversized request line or head
(414, 431, at the configured limits), slowloris connections (408), absolute-form URIs naming
other hosts, CONNECT, odd Host values, garbage cookies and persistence cookies with invalid
prefixes, and servers answering with CR, LF or NUL in a header, each gets a clear answer or is
forwarded in the form HAProxy 2.6 forwards it. A request never reaches a server in an
ambiguous form (the scripted servers record what they receive), a host a URI names is never
dialled, and the single worker carries on: after every test it still runs, with the same pid,
and serves a fresh connection (the autouse ``carries_on`` fixture).

Each proxy runs one worker, so a crash could not hide behind a sibling. Expected Cookie
headers were recorded from haproxy 2.6.12 with the same ``cookie`` lines.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from geoproxy.proxy.errorpages import builtin_page
from tests.e2e.conftest import Stack
from tests.support.ports import free_ports
from tests.support.proxy_process import ProxyProcess
from tests.support.raw_client import RawConnection, RawResponse
from tests.support.scripted_servers import Received, ScriptedServers

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
PAGE_400 = builtin_page(400).raw
PAGE_408 = builtin_page(408).raw
PAGE_414 = builtin_page(414).raw
PAGE_431 = builtin_page(431).raw
PAGE_502 = builtin_page(502).raw
HTTP_REQUEST_TIMEOUT = 1.0
# the small proxy: tune.bufsize 8192 leaves 8192 - 1024 bytes for a head; maxhdr 20 lines
SMALL_HEAD = 8192 - 1024
SMALL_FIELDS = 20 - 1

TIMEOUTS = f"""\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout http-request {int(HTTP_REQUEST_TIMEOUT * 1000)}ms
"""
CONFIG = TIMEOUTS + """\
frontend fe
    bind 127.0.0.1:{port}
    use_backend prefix if {{ path_beg /prefix }}
    use_backend insert if {{ path_beg /insert }}
    default_backend plain
backend plain
    server s1 {s1}
backend prefix
    balance roundrobin
    cookie JSESSIONID prefix
    server p1 {p1} cookie p1
    server p2 {p2} cookie p2
backend insert
    balance roundrobin
    cookie SERVERID insert indirect nocache
    server i1 {i1} cookie i1
    server i2 {i2} cookie i2
listen stats
    bind 127.0.0.1:{stats_port}
    stats uri /haproxy?stats
    stats auth admin:s3cret
    stats admin if TRUE
"""
SMALL_CONFIG = """\
global
    tune.bufsize 8192
    tune.http.maxhdr 20
""" + TIMEOUTS + """\
frontend small
    bind 127.0.0.1:{port}
    default_backend plain
backend plain
    server s1 {s1}
"""


@dataclass
class Hostile:
    proxy: ProxyProcess  # HAProxy's default limits
    small: ProxyProcess  # tune.bufsize 8192, tune.http.maxhdr 20
    servers: ScriptedServers
    workers: dict[int, list[int]]  # proxy port -> its worker's pid at start
    sentinel: socket.socket  # a listener that hostile URIs name: it must never be dialled
    redis_url: str
    stats_port: int  # the proxy's stats listener (stats auth admin:s3cret, stats admin)

    @property
    def sentinel_authority(self) -> str:
        return f"{HOST}:{self.sentinel.getsockname()[1]}"

    def sentinel_was_dialled(self) -> bool:
        try:
            connection, _ = self.sentinel.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True


@pytest.fixture(scope="module")
def hostile(module_stack: Stack) -> Iterator[Hostile]:
    servers = ScriptedServers(["s1", "p1", "p2", "i1", "i2"])
    sentinel = socket.create_server((HOST, 0))
    sentinel.setblocking(False)
    try:
        port, small_port, stats_port = free_ports(3)
        addresses = {name: servers.address(name) for name in ("s1", "p1", "p2", "i1", "i2")}
        config = CONFIG.format(port=port, stats_port=stats_port, **addresses)
        proxy = module_stack.proxy(config, workers=1)
        small = module_stack.proxy(SMALL_CONFIG.format(port=small_port, s1=addresses["s1"]), 1)
        workers = {port: proxy.worker_pids(), small_port: small.worker_pids()}
        assert all(len(pids) == 1 for pids in workers.values()), workers
        yield Hostile(
            proxy, small, servers, workers, sentinel, module_stack.redis_url, stats_port
        )
    finally:
        servers.stop()
        sentinel.close()


@pytest.fixture(autouse=True)
def carries_on(hostile: Hostile) -> Iterator[None]:
    """After each test: each proxy's one worker is the one it started with, logged no
    traceback, and serves a fresh connection."""
    yield
    for proxy in (hostile.proxy, hostile.small):
        assert proxy.worker_pids() == hostile.workers[proxy.port], proxy.output()
        assert "Traceback" not in proxy.output(), proxy.output()
        answer = request(proxy, b"GET /alive HTTP/1.1\r\nHost: t\r\nX-Case: alive\r\n\r\n")
        assert (answer.status, answer.header("x-server")) == (200, "s1")


def request(proxy: ProxyProcess, raw: bytes) -> RawResponse:
    with RawConnection(HOST, proxy.port) as connection:
        connection.send(raw)
        return connection.read_response()


def refused(proxy: ProxyProcess, raw: bytes) -> bytes:
    """Everything the proxy sends back until it closes the connection."""
    with RawConnection(HOST, proxy.port) as connection:
        try:
            connection.send(raw)
        except OSError:
            pass  # the proxy answered and closed before reading it all
        return connection.read_until_closed()


def only(received: list[Received]) -> Received:
    assert len(received) == 1, received
    return received[0]


# -- request smuggling and malformed framing --------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0, 40\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x10\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
        CHUNKED_HEAD + b"-1\r\nx\r\n0\r\n\r\n" + SMUGGLED,
        CHUNKED_HEAD + b"0x1\r\nx\r\n0\r\n\r\n" + SMUGGLED,
        CHUNKED_HEAD + b" 1\r\nx\r\n0\r\n\r\n" + SMUGGLED,
        CHUNKED_HEAD + b"fffffffffffffffff1\r\nx\r\n0\r\n\r\n" + SMUGGLED,
        CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n" + SMUGGLED,
        CHUNKED_HEAD + b"5\nhello\n0\n\n" + SMUGGLED,
        b"GET / HTTP/1.1\nHost: t\n\n" + SMUGGLED,
        b"GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n" + SMUGGLED,
        b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n" + SMUGGLED,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n" + SMUGGLED,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rInjected: 1\r\n\r\n" + SMUGGLED,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\nInjected: 1\r\n\r\n" + SMUGGLED,
        b"GET / HTTP/1.1\r\nHost: t\r\nX\x00Y: 1\r\n\r\n" + SMUGGLED,
        b"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLED,
    ],
    ids=[
        "cl-then-te",
        "te-then-cl",
        "repeated-cl",
        "conflicting-cl",
        "cl-list",
        "cl-negative",
        "cl-hex",
        "te-space-before-colon",
        "te-xchunked",
        "te-chunked-not-last",
        "te-vertical-tab",
        "te-repeated-identity-last",
        "te-obs-fold",
        "chunk-size-not-hex",
        "chunk-size-negative",
        "chunk-size-0x",
        "chunk-size-leading-space",
        "chunk-size-overflow",
        "chunk-data-without-crlf",
        "chunks-with-bare-lf",
        "bare-lf-head",
        "bare-lf-in-fields",
        "bare-cr-in-fields",
        "nul-in-value",
        "cr-in-value",
        "lf-in-value",
        "nul-in-name",
        "nul-in-target",
    ],
)
def test_a_smuggling_or_malformed_request_gets_400_and_nothing_reaches_a_server(
    hostile: Hostile, raw: bytes
) -> None:
    before = hostile.servers.total()
    assert refused(hostile.proxy, raw) == PAGE_400
    assert hostile.servers.total() == before


@pytest.mark.parametrize(
    "coding", [b"chunked", b"ChUnKeD", b"\tchunked", b"gzip, chunked", b"gzip,chunked"]
)
def test_a_valid_transfer_encoding_in_any_spelling_frames_one_body_and_the_next_request(
    hostile: Hostile, coding: bytes
) -> None:
    case = b"te-" + coding.hex().encode()
    body = b"5\r\nhello\r\n0\r\n\r\n"
    with RawConnection(HOST, hostile.proxy.port) as connection:
        connection.send(
            b"POST /one HTTP/1.1\r\nHost: t\r\nX-Case: %b\r\nTransfer-Encoding:%b\r\n\r\n%b"
            b"GET /two HTTP/1.1\r\nHost: t\r\nX-Case: %b\r\n\r\n" % (case, coding, body, case)
        )
        assert connection.read_response().status == 200
        assert connection.read_response().status == 200
    first, second = hostile.servers.received(case.decode())
    assert (first.method, first.target, second.method, second.target) == (
        "POST", "/one", "GET", "/two"
    )
    assert first.all("content-length") == []
    (forwarded,) = first.all("transfer-encoding")
    assert forwarded.lower().replace(" ", "").endswith("chunked")


def test_an_unknown_method_split_over_two_reads_is_forwarded(hostile: Hostile) -> None:
    with RawConnection(HOST, hostile.proxy.port) as connection:
        connection.send(b"BR")
        time.sleep(0.2)  # two reads for the worker
        connection.send(b"EW /pot HTTP/1.1\r\nHost: t\r\nX-Case: split-method\r\n\r\n")
        assert connection.read_response().status == 200
    received = only(hostile.servers.received("split-method"))
    assert (received.method, received.target) == ("BREW", "/pot")


# -- limits: tune.bufsize and tune.http.maxhdr -------------------------------------------------


def head_of(size: int, fields: int = 0, case: str = "limit") -> bytes:
    """A GET head of exactly ``size`` bytes, with ``fields`` header fields (at least 3)."""
    lines = [b"Host: t", b"X-Case: " + case.encode()]
    lines += [b"X-F%d: v" % i for i in range(max(fields - 3, 0))]
    start = b"GET / HTTP/1.1\r\n" + b"".join(line + b"\r\n" for line in lines) + b"X-Fill: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def test_a_head_that_fits_tune_bufsize_less_its_reserve_reaches_the_server_whole(
    hostile: Hostile,
) -> None:
    raw = head_of(SMALL_HEAD, case="fits")
    assert len(raw) == SMALL_HEAD
    assert request(hostile.small, raw).status == 200
    sent = raw.partition(b"X-Fill: ")[2].partition(b"\r\n")[0].decode()
    assert only(hostile.servers.received("fits")).all("x-fill") == [sent]


def test_a_head_one_byte_larger_gets_431_and_reaches_no_server(hostile: Hostile) -> None:
    raw = head_of(SMALL_HEAD + 1, case="too-large")
    assert refused(hostile.small, raw) == PAGE_431
    assert hostile.servers.received("too-large") == []


def test_a_request_line_that_alone_does_not_fit_gets_414(hostile: Hostile) -> None:
    target = b"/" + b"a" * (SMALL_HEAD - len(b"GET / HTTP/1.1\r\n") + 1)
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nX-Case: too-long\r\n\r\n"
    assert len(b"GET " + target + b" HTTP/1.1\r\n") == SMALL_HEAD + 1
    assert refused(hostile.small, raw) == PAGE_414
    assert hostile.servers.received("too-long") == []


def test_a_request_line_that_fits_alone_but_not_with_its_fields_gets_431(
    hostile: Hostile,
) -> None:
    target = b"/" + b"a" * (SMALL_HEAD - 100)
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nX-Case: line-and-fields\r\n"
    raw += b"X-Pad: " + b"p" * 100 + b"\r\n\r\n"
    assert refused(hostile.small, raw) == PAGE_431
    assert hostile.servers.received("line-and-fields") == []


def test_tune_http_maxhdr_counts_the_request_line_with_the_fields(hostile: Hostile) -> None:
    assert request(hostile.small, head_of(500, SMALL_FIELDS, "fields-ok")).status == 200
    assert len(only(hostile.servers.received("fields-ok")).headers) == SMALL_FIELDS
    assert refused(hostile.small, head_of(500, SMALL_FIELDS + 1, "fields-over")) == PAGE_431
    assert hostile.servers.received("fields-over") == []


def test_an_endless_head_gets_431_without_waiting_for_timeout_http_request(
    hostile: Hostile,
) -> None:
    started = time.monotonic()
    answer = refused(hostile.small, b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: " + b"e" * 40_000)
    assert answer == PAGE_431
    assert time.monotonic() - started < HTTP_REQUEST_TIMEOUT


def test_with_haproxys_default_limits_a_9000_byte_target_and_field_are_forwarded(
    hostile: Hostile,
) -> None:
    target = b"/" + b"t" * 9000
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nX-Case: default-limits\r\n\r\n"
    with RawConnection(HOST, hostile.proxy.port) as connection:
        connection.send(raw)
        assert connection.read_response().status == 200
    raw = b"GET / HTTP/1.1\r\nHost: t\r\nX-Case: default-limits\r\n"
    raw += b"X-Big: " + b"b" * 9000 + b"\r\n\r\n"
    with RawConnection(HOST, hostile.proxy.port) as connection:
        connection.send(raw)
        assert connection.read_response().status == 200
    long_target, big_field = hostile.servers.received("default-limits")
    assert (long_target.target, big_field.all("x-big")) == (target.decode(), ["b" * 9000])


# -- slowloris ---------------------------------------------------------------------------------


def test_slow_heads_on_several_connections_each_get_408_while_others_are_served(
    hostile: Hostile,
) -> None:
    slow = [RawConnection(HOST, hostile.proxy.port) for _ in range(8)]
    try:
        started = time.monotonic()
        for connection in slow:
            connection.send(b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Case: slowloris\r\nX-Slow: ")
        served_in: list[float] = []
        while time.monotonic() - started < HTTP_REQUEST_TIMEOUT + 0.5:
            for connection in slow:
                try:
                    connection.send(b"a")
                except OSError:
                    pass  # answered and closed: the trickle goes on on the others
            if not served_in and time.monotonic() - started > HTTP_REQUEST_TIMEOUT / 2:
                begun = time.monotonic()
                answer = request(hostile.proxy, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert answer.status == 200
                served_in.append(time.monotonic() - begun)
            time.sleep(0.05)
        for connection in slow:
            assert connection.read_until_closed() == PAGE_408
        elapsed = time.monotonic() - started
    finally:
        for connection in slow:
            connection.close()
    assert served_in and served_in[0] < 0.5, "the slow clients held up a normal request"
    assert elapsed < HTTP_REQUEST_TIMEOUT + 2.0
    assert hostile.servers.received("slowloris") == []


# -- targets: absolute form, CONNECT -----------------------------------------------------------


def test_an_absolute_uri_naming_another_host_goes_to_the_backend_in_origin_form(
    hostile: Hostile,
) -> None:
    other = hostile.sentinel_authority.encode()
    answer = request(
        hostile.proxy,
        b"GET http://%b/x?y=1 HTTP/1.1\r\nHost: %b\r\nX-Case: absolute\r\n\r\n" % (other, other),
    )
    assert (answer.status, answer.header("x-server")) == (200, "s1")
    received = only(hostile.servers.received("absolute"))
    assert (received.target, received.all("host")) == ("/x?y=1", [other.decode()])
    assert not hostile.sentinel_was_dialled()


def test_an_absolute_uri_without_host_gives_the_server_its_authority_as_host(
    hostile: Hostile,
) -> None:
    other = hostile.sentinel_authority.encode()
    answer = request(hostile.proxy, b"GET http://%b HTTP/1.1\r\nX-Case: no-host\r\n\r\n" % other)
    assert answer.status == 200
    received = only(hostile.servers.received("no-host"))
    assert (received.target, received.all("host")) == ("/", [other.decode()])
    assert not hostile.sentinel_was_dialled()


def test_an_absolute_uri_naming_another_host_than_host_gets_400(hostile: Hostile) -> None:
    other = hostile.sentinel_authority.encode()
    raw = b"GET http://%b/x HTTP/1.1\r\nHost: good.example\r\nX-Case: two-hosts\r\n\r\n" % other
    before = hostile.servers.total()
    assert refused(hostile.proxy, raw) == PAGE_400
    assert hostile.servers.total() == before
    assert not hostile.sentinel_was_dialled()


@pytest.mark.parametrize("tunnel", [b"", b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"])
def test_connect_gets_405_and_nothing_is_dialled(hostile: Hostile, tunnel: bytes) -> None:
    other = hostile.sentinel_authority.encode()
    before = hostile.servers.total()
    raw = b"CONNECT %b HTTP/1.1\r\nHost: %b\r\n\r\n%b" % (other, other, tunnel)
    answer = refused(hostile.proxy, raw)
    assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n"), answer
    assert hostile.servers.total() == before
    assert not hostile.sentinel_was_dialled()


# -- Host --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [b"a b", b"user@evil.example", b"a/b", b"a\x01b", b"\xc3\xa9vil.example", b"a:b:c", b"[::1"],
    ids=["space", "userinfo", "slash", "control", "raw-utf8", "two-colons", "open-bracket"],
)
def test_a_host_with_odd_characters_gets_400(hostile: Hostile, host: bytes) -> None:
    before = hostile.servers.total()
    assert refused(hostile.proxy, b"GET / HTTP/1.1\r\nHost: %b\r\n\r\n" % host) == PAGE_400
    assert hostile.servers.total() == before


def test_two_hosts_that_disagree_get_400_and_two_that_agree_are_forwarded_as_one(
    hostile: Hostile,
) -> None:
    before = hostile.servers.total()
    raw = b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"
    assert refused(hostile.proxy, raw) == PAGE_400
    assert hostile.servers.total() == before
    raw = b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Case: same-hosts\r\nHost: a.example\r\n\r\n"
    assert request(hostile.proxy, raw).status == 200
    assert only(hostile.servers.received("same-hosts")).all("host") == ["a.example"]


@pytest.mark.parametrize(
    "host", ["[::1]:8080", "127.0.0.1", "www.example.com:80", "xn--vil-bma.example", ""]
)
def test_a_valid_host_reaches_the_server_as_sent(hostile: Hostile, host: str) -> None:
    case = "host-" + host
    raw = f"GET / HTTP/1.1\r\nHost: {host}\r\nX-Case: {case}\r\n\r\n".encode()
    assert request(hostile.proxy, raw).status == 200
    assert only(hostile.servers.received(case)).all("host") == [host]


def test_a_very_long_host_is_forwarded_whole_within_the_limits_and_431_beyond(
    hostile: Hostile,
) -> None:
    host = "h" * 6000
    raw = f"GET / HTTP/1.1\r\nHost: {host}\r\nX-Case: long-host\r\n\r\n".encode()
    assert request(hostile.proxy, raw).status == 200
    assert only(hostile.servers.received("long-host")).all("host") == [host]
    raw = f"GET / HTTP/1.1\r\nHost: {'h' * 8000}\r\nX-Case: longer-host\r\n\r\n".encode()
    assert refused(hostile.small, raw) == PAGE_431
    assert hostile.servers.received("longer-host") == []


# -- cookies -----------------------------------------------------------------------------------

# 1500 cookies: as many as fit in the head HAProxy's default tune.bufsize leaves room for
MANY_COOKIES = "; ".join(f"{i:x}=1" for i in range(1500))


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "=", ";;; ;", "a=1;;b", "n=" + "v" * 8000, MANY_COOKIES, '"x=1"; $Version=1'],
    ids=["no-equals", "empty-name", "only-separators", "empty-piece", "8kb", "1500", "quoted"],
)
def test_garbage_cookies_without_persistence_reach_the_server_as_sent(
    hostile: Hostile, cookie: str
) -> None:
    case = f"garbage-{len(cookie)}-{cookie[:6]}"
    raw = f"GET / HTTP/1.1\r\nHost: t\r\nX-Case: {case}\r\nCookie: {cookie}\r\n\r\n"
    assert request(hostile.proxy, raw.encode()).status == 200
    assert only(hostile.servers.received(case)).all("cookie") == [cookie]


# client Cookie -> (server it must go to or None when balanced, Cookie the server receives),
# as haproxy 2.6.12 forwards it with the same backend
PREFIX_CASES = {
    "JSESSIONID=p2~abc": ("p2", "JSESSIONID=abc"),
    "JSESSIONID=p1~~abc": ("p1", "JSESSIONID=~abc"),
    "JSESSIONID=~": (None, "JSESSIONID="),
    "JSESSIONID=": (None, "JSESSIONID="),
    "JSESSIONID": (None, "JSESSIONID"),
    "garbage": (None, "garbage"),
    "JSESSIONID=p9~abc": (None, "JSESSIONID=abc"),
    "a=1; JSESSIONID=p1~x; b=2": ("p1", "a=1; JSESSIONID=x; b=2"),
    "JSESSIONID=p1~": ("p1", "JSESSIONID="),
    ";;; JSESSIONID=p2~q ;;": ("p2", ";;; JSESSIONID=q ;;"),
    "JSESSIONID=p1~a; JSESSIONID=p2~b": ("p1", "JSESSIONID=a; JSESSIONID=b"),
    "JSESSIONID=p2~" + "s" * 8000: ("p2", "JSESSIONID=" + "s" * 8000),
    MANY_COOKIES + "; JSESSIONID=p2~z": ("p2", MANY_COOKIES + "; JSESSIONID=z"),
}
INSERT_CASES = {
    "SERVERID=i2": ("i2", None),
    "SERVERID=": (None, None),
    "SERVERID": (None, "SERVERID"),
    "SERVERID=nosuch": (None, None),
    "a=1; SERVERID=i1; b=2": ("i1", "a=1; b=2"),
    "SERVERID=i1;;;; =; =x": ("i1", ";;; =; =x"),
    "garbage; SERVERID=i2": ("i2", "garbage"),
    MANY_COOKIES + "; SERVERID=i1": ("i1", MANY_COOKIES),
}


@pytest.mark.parametrize(
    ("path", "cookie", "expected"),
    [("/prefix", k, v) for k, v in PREFIX_CASES.items()]
    + [("/insert", k, v) for k, v in INSERT_CASES.items()],
    ids=[f"prefix-{i}" for i in range(len(PREFIX_CASES))]
    + [f"insert-{i}" for i in range(len(INSERT_CASES))],
)
def test_a_persistence_cookie_with_invalid_separators_is_routed_and_forwarded_well_formed(
    hostile: Hostile, path: str, cookie: str, expected: tuple[str | None, str | None]
) -> None:
    server, forwarded = expected
    case = f"persist-{path}-{hash(cookie)}"
    raw = f"GET {path} HTTP/1.1\r\nHost: t\r\nX-Case: {case}\r\nCookie: {cookie}\r\n\r\n"
    answer = request(hostile.proxy, raw.encode())
    assert answer.status == 200
    received = only(hostile.servers.received(case))
    if server is not None:
        assert received.server == server
    else:
        assert received.server in ({"p1", "p2"} if path == "/prefix" else {"i1", "i2"})
    assert received.all("cookie") == ([] if forwarded is None else [forwarded])


# -- hostile responses -------------------------------------------------------------------------

HOSTILE_ANSWERS = {
    "set-cookie-cr": b"Set-Cookie: a=1\rX-Injected: yes\r\n",
    "set-cookie-lf": b"Set-Cookie: a=1\nX-Injected: yes\r\n",
    "set-cookie-nul": b"Set-Cookie: a=\x001\r\n",
    "set-cookie-folded": b"Set-Cookie: a=1\r\n X-Injected: yes\r\n",
    "prefix-cookie-cr": b"Set-Cookie: JSESSIONID=abc\rX-Injected: yes\r\n",
    "prefix-cookie-lf": b"Set-Cookie: JSESSIONID=abc\nX-Injected: yes\r\n",
    "other-field-nul": b"X-Other: v\x00\r\n",
    "name-with-space": b"X Injected: yes\r\n",
}


@pytest.mark.parametrize("case", list(HOSTILE_ANSWERS))
def test_a_server_answering_with_cr_lf_or_nul_in_a_field_gives_the_client_a_502(
    hostile: Hostile, case: str
) -> None:
    hostile.servers.script_raw(
        case, b"HTTP/1.1 200 OK\r\n" + HOSTILE_ANSWERS[case] + b"Content-Length: 2\r\n\r\nok"
    )
    path = b"/prefix" if case.startswith("prefix") else b"/"
    answer = request(
        hostile.proxy, b"GET %b HTTP/1.1\r\nHost: t\r\nX-Case: %b\r\n\r\n" % (path, case.encode())
    )
    assert answer.head + answer.body == PAGE_502
    assert b"injected" not in answer.head.lower()
    assert len(hostile.servers.received(case)) == 1, "sent once, not retried"


# -- the admin side is not reachable through a proxied frontend -------------------------------
# (the configuration serves the stats page, with admin actions, on another listener)


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/stats"),
        ("GET", "/haproxy?stats"),
        ("GET", "/haproxy?stats;csv"),
        ("GET", "/;csv"),
        ("GET", "/metrics"),
        ("GET", "http://t/haproxy?stats"),
        ("POST", "/haproxy?stats"),
        ("POST", "/"),
    ],
)
def test_stats_and_admin_paths_of_a_frontend_without_stats_reach_its_backend(
    hostile: Hostile, method: str, target: str
) -> None:
    form = b"b=plain&s=s1&action=maint"
    case = f"admin-{method}-{target}"
    raw = f"{method} {target} HTTP/1.1\r\nHost: t\r\nX-Case: {case}\r\n".encode()
    if method == "POST":
        raw += b"Content-Type: application/x-www-form-urlencoded\r\n"
        raw += b"Content-Length: %d\r\n\r\n%b" % (len(form), form)
    else:
        raw += b"\r\n"
    answer = request(hostile.proxy, raw)
    assert (answer.status, answer.header("x-server")) == (200, "s1")
    received = only(hostile.servers.received(case))
    assert received.target == target.removeprefix("http://t")
    client = redis.Redis.from_url(hostile.redis_url, decode_responses=True)
    try:
        assert client.hget("gp:{plain}:srv:s1", "admin") == "ready"
    finally:
        client.close()


def test_the_stats_listener_itself_answers_401_to_an_admin_action_without_credentials(
    hostile: Hostile,
) -> None:
    form = b"b=plain&s=s1&action=maint"
    with RawConnection(HOST, hostile.stats_port) as connection:
        connection.send(
            b"POST /haproxy?stats HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(form), form)
        )
        answer = connection.read_response()
    assert answer.status == 401
    assert answer.header("www-authenticate") == 'Basic realm="HAProxy Statistics"'
    client = redis.Redis.from_url(hostile.redis_url, decode_responses=True)
    try:
        assert client.hget("gp:{plain}:srv:s1", "admin") == "ready"
    finally:
        client.close()
