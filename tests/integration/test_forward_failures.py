"""Servers that misbehave, stall or die, and clients that go away.

HAProxy manual: "timeout server" (an inactivity timeout, 504), invalid or truncated responses
(502), and DESIGN.md invariant 5: a request whose bytes reached a server is never sent again.
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from geoproxy.errors import BadResponse, ClientGone, ServerTimeout
from geoproxy.forward import ServerPool
from tests.integration.forward_scripted import (
    Reader,
    Request,
    ScriptedServer,
    forward,
    gunicorn_environ,
    read_body,
    response,
)

GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def answer_then_close(raw: bytes, *, reset: bool = False) -> ScriptedServer:
    """A server that reads one request, sends ``raw`` and closes (with a RST if ``reset``)."""

    def handler(conn: socket.socket) -> None:
        Reader(conn).read_request()
        conn.sendall(raw)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return ScriptedServer(handler)


@pytest.fixture
def pools() -> Iterator[list[ServerPool]]:
    made: list[ServerPool] = []
    yield made
    for pool in made:
        pool.close()


def pool_for(pools: list[ServerPool], server: ScriptedServer) -> ServerPool:
    pools.append(ServerPool("127.0.0.1", server.port))
    return pools[-1]


OK_END = b"Content-Length: 0\r\n\r\n"
INVALID_HEADS = {
    "garbage": b"hello world\r\n\r\n",
    "nothing at all": b"",
    "HTTP/2 status line": b"HTTP/2 200 OK\r\n" + OK_END,
    "four-digit status": b"HTTP/1.1 2000 OK\r\n" + OK_END,
    "two-digit status": b"HTTP/1.1 20 OK\r\n" + OK_END,
    "status below 100": b"HTTP/1.1 099 Low\r\n" + OK_END,
    "status above 599": b"HTTP/1.1 600 High\r\n" + OK_END,
    "control character in reason": b"HTTP/1.1 200 O\x01K\r\n" + OK_END,
    "closed inside the head": b"HTTP/1.1 200 OK\r\nContent-Le",
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "differing content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
    b"\r\nok!",
    "differing content-lengths in a list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok!",
    "non-numeric content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 2a\r\n\r\nok",
    "negative content-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "CR in a header value": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n" + OK_END,
    "LF in a header value": b"HTTP/1.1 200 OK\r\nX-A: a\nb\r\n" + OK_END,
    "NUL in a header value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n" + OK_END,
    "control character in a header value": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n" + OK_END,
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n" + OK_END,
    "space in a header name": b"HTTP/1.1 200 OK\r\nX A: 1\r\n" + OK_END,
    "space before the colon": b"HTTP/1.1 200 OK\r\nX-A : 1\r\n" + OK_END,
    "empty header name": b"HTTP/1.1 200 OK\r\n: 1\r\n" + OK_END,
    "header line without colon": b"HTTP/1.1 200 OK\r\nNoColon\r\n" + OK_END,
    "head larger than the buffer": b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 20000 + b"\r\n" + OK_END,
    "chunked applied twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
    b"0\r\n\r\n",
    "too many interim responses": b"HTTP/1.1 100 Continue\r\n\r\n" * 11 + b"HTTP/1.1 200 OK\r\n"
    b"Content-Length: 0\r\n\r\n",
    "closed after an interim response": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
}


@pytest.mark.parametrize("raw", INVALID_HEADS.values(), ids=INVALID_HEADS.keys())
def test_invalid_or_truncated_response_head_is_bad_response(
    pools: list[ServerPool], raw: bytes
) -> None:
    with answer_then_close(raw) as server:
        pool = pool_for(pools, server)
        with pytest.raises(BadResponse) as failure:
            forward(pool, GET)
        assert failure.value.status == 502
        assert pool.idle_count == 0


INVALID_BODIES = {
    "truncated content-length body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
    "truncated chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    "missing last chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
    "truncated trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
    "invalid chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk data without CRLF": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nokXX0\r\n\r\n",
    "endless chunk size line": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"0" * 5000,
}


@pytest.mark.parametrize("raw", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_or_truncated_body_raises_bad_response_from_the_iterator(
    pools: list[ServerPool], raw: bytes
) -> None:
    with answer_then_close(raw) as server:
        pool = pool_for(pools, server)
        upstream = forward(pool, GET)
        assert upstream.status == 200
        with pytest.raises(BadResponse):
            read_body(upstream)
        assert pool.idle_count == 0


def test_reset_mid_body_is_bad_response(pools: list[ServerPool]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000
    with answer_then_close(raw, reset=True) as server:
        # the reset may overtake the head: then forward itself raises
        with pytest.raises(BadResponse):
            read_body(forward(pool_for(pools, server), GET))


def wait_for_close(conn: socket.socket) -> None:
    """Block until the client (or the server's stop) ends the connection."""
    while conn.recv(65536):
        pass


def test_server_that_never_answers_is_server_timeout(pools: list[ServerPool]) -> None:
    def silent(conn: socket.socket) -> None:
        wait_for_close(conn)

    with ScriptedServer(silent) as server:
        pool = pool_for(pools, server)
        started = time.monotonic()
        with pytest.raises(ServerTimeout) as failure:
            forward(pool, GET, server_timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2
        assert failure.value.status == 504
        assert pool.idle_count == 0


def test_server_that_stalls_mid_body_is_server_timeout(pools: list[ServerPool]) -> None:
    def stall(conn: socket.socket) -> None:
        Reader(conn).read_request()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        wait_for_close(conn)

    with ScriptedServer(stall) as server:
        pool = pool_for(pools, server)
        upstream = forward(pool, GET, server_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ServerTimeout):
            read_body(upstream)
        assert 0.25 < time.monotonic() - started < 2
        assert pool.idle_count == 0


def test_server_that_stalls_between_chunks_is_server_timeout(pools: list[ServerPool]) -> None:
    def stall(conn: socket.socket) -> None:
        Reader(conn).read_request()
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")
        wait_for_close(conn)

    with ScriptedServer(stall) as server:
        upstream = forward(pool_for(pools, server), GET, server_timeout=0.3)
        with pytest.raises(ServerTimeout):
            read_body(upstream)


def test_timeout_server_is_an_inactivity_timeout(pools: list[ServerPool]) -> None:
    def trickle(conn: socket.socket) -> None:
        Reader(conn).read_request()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":
            time.sleep(0.1)
            conn.sendall(bytes([byte]))

    with ScriptedServer(trickle) as server:
        started = time.monotonic()
        assert read_body(forward(pool_for(pools, server), GET, server_timeout=0.4)) == b"abcdef"
        assert time.monotonic() - started > 0.4


def dies_mid_body(seen: list[Request], after: int) -> ScriptedServer:
    """Connection 1 answers one GET if asked, then reads a request head and ``after`` body
    bytes and resets; any later connection records what it reads and answers."""

    def handler(conn: socket.socket) -> None:
        reader = Reader(conn)
        while (head := reader.read_head()) is not None:
            seen.append(Request(head, [], b""))
            if head.startswith(b"GET"):
                conn.sendall(response(200, b"ok"))
                continue
            reader.read_exact(after)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return

    return ScriptedServer(handler)


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
def test_request_whose_body_reached_a_server_that_died_is_not_resent(
    pools: list[ServerPool], reused: bool
) -> None:
    seen: list[Request] = []
    with dies_mid_body(seen, after=100_000) as server:
        pool = pool_for(pools, server)
        if reused:
            assert read_body(forward(pool, GET)) == b"ok"
        raw = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n"
        with pytest.raises(BadResponse) as failure:
            forward(pool, raw, body=io.BytesIO(b"u" * 1_000_000))
        assert not failure.value.retryable
    methods = [request.head.split(b" ")[0] for request in seen]
    assert methods == ([b"GET", b"POST"] if reused else [b"POST"])
    assert server.accepted == 1


def test_body_shorter_than_its_content_length_is_client_gone_before_anything_is_sent(
    pools: list[ServerPool],
) -> None:
    seen: list[Request] = []

    def record(conn: socket.socket) -> None:
        reader = Reader(conn)
        while (request := reader.read_request()) is not None:
            seen.append(request)
            conn.sendall(response(200, b"ok"))

    with ScriptedServer(record) as server:
        pool = pool_for(pools, server)
        with pytest.raises(ClientGone):
            forward(pool, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello")
        # nothing was sent: the connection went back to the pool and still serves
        assert pool.idle_count == 1
        assert read_body(forward(pool, GET)) == b"ok"
    assert [request.request_line for request in seen] == ["GET /x HTTP/1.1"]
    assert server.accepted == 1


def test_client_gone_mid_upload_closes_the_server_connection(pools: list[ServerPool]) -> None:
    received = threading.Event()

    def swallow(conn: socket.socket) -> None:
        reader = Reader(conn)
        if reader.read_head() is not None:
            received.set()
            wait_for_close(conn)

    with ScriptedServer(swallow) as server:
        pool = pool_for(pools, server)
        raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\n" + b"a" * 100_000
        with pytest.raises(ClientGone):
            forward(pool, raw)
        assert received.wait(5)
        assert pool.idle_count == 0


def test_client_socket_that_times_out_is_client_gone(pools: list[ServerPool]) -> None:
    client, peer = socket.socketpair()
    client.settimeout(0.1)
    body = client.makefile("rb")
    try:
        with ScriptedServer(wait_for_close) as server:
            raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
            with pytest.raises(ClientGone):
                forward(pool_for(pools, server), raw, body=body)
    finally:
        body.close()
        client.close()
        peer.close()


def test_declared_body_without_a_reader_is_a_programming_error(pools: list[ServerPool]) -> None:
    from geoproxy.forward import build_request_head, send

    environ = gunicorn_environ(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\na")
    head, framing = build_request_head(environ, cookie=None, append=(), server_close=False)
    pools.append(ServerPool("127.0.0.1", 9))
    with pytest.raises(ValueError):
        send(pools[-1], head, framing, None, connect_timeout=1, server_timeout=1, is_head=False)
