"""Keep-alive connection reuse, the idle pool's bound and order, stale idle connections,
connect failures, and the one resend DESIGN.md invariant 5 allows.

HAProxy manual: "option http-keep-alive", "timeout connect", "retries" (a request is resent
only when nothing of it could have been processed).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from geoproxy.errors import BadResponse, ConnectFailed
from geoproxy.forward import ServerPool
from tests.integration.forward_scripted import (
    Reader,
    Request,
    ScriptedServer,
    forward,
    free_port,
    gunicorn_environ,
    keep_alive,
    read_body,
    response,
)

GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
POST = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"


def ok(request: Request) -> bytes:
    return response(200, b"ok " + request.request_line.encode())


@pytest.fixture
def pool_factory() -> Iterator[list[ServerPool]]:
    pools: list[ServerPool] = []
    yield pools
    for pool in pools:
        pool.close()


def make_pool(pools: list[ServerPool], port: int, *, max_idle: int = 64) -> ServerPool:
    pool = ServerPool("127.0.0.1", port, max_idle=max_idle)
    pools.append(pool)
    return pool


def test_keep_alive_connection_is_reused_so_the_server_counts_fewer_connections(
    pool_factory: list[ServerPool],
) -> None:
    seen: list[Request] = []
    with ScriptedServer(keep_alive(ok, seen=seen)) as server:
        pool = make_pool(pool_factory, server.port)
        bodies = [read_body(forward(pool, GET)) for _ in range(10)]
    assert bodies == [b"ok GET /x HTTP/1.1"] * 10
    assert len(seen) == 10
    assert server.accepted == 1
    assert pool.opened == 1


def test_connection_is_not_reused_when_the_server_says_connection_close(
    pool_factory: list[ServerPool],
) -> None:
    def close_each(request: Request) -> bytes:
        return response(200, b"bye", [("Connection", "close")])

    with ScriptedServer(keep_alive(close_each)) as server:
        pool = make_pool(pool_factory, server.port)
        for _ in range(3):
            assert read_body(forward(pool, GET)) == b"bye"
        assert pool.idle_count == 0
    assert server.accepted == 3


def test_http10_response_is_reused_only_with_connection_keep_alive(
    pool_factory: list[ServerPool],
) -> None:
    def http10(keep: bool) -> ScriptedServer:
        header = "Connection: keep-alive\r\n" if keep else ""
        raw = f"HTTP/1.0 200 OK\r\n{header}Content-Length: 2\r\n\r\nok".encode()
        return ScriptedServer(keep_alive(lambda request: raw))

    for keep, connections in [(True, 1), (False, 3)]:
        with http10(keep) as server:
            pool = make_pool(pool_factory, server.port)
            for _ in range(3):
                assert read_body(forward(pool, GET)) == b"ok"
        assert server.accepted == connections


def test_connection_is_not_reused_after_asking_the_server_to_close(
    pool_factory: list[ServerPool],
) -> None:
    seen: list[Request] = []
    with ScriptedServer(keep_alive(ok, seen=seen)) as server:
        pool = make_pool(pool_factory, server.port)
        for _ in range(2):
            read_body(forward(pool, GET, server_close=True))
    assert [request.header("connection") for request in seen] == ["close", "close"]
    assert server.accepted == 2


def test_pool_keeps_at_most_max_idle_connections(pool_factory: list[ServerPool]) -> None:
    with ScriptedServer(keep_alive(ok)) as server:
        pool = make_pool(pool_factory, server.port, max_idle=2)
        # four responses held open at once need four connections
        held = [forward(pool, GET) for _ in range(4)]
        assert pool.opened == 4
        for upstream in held:
            read_body(upstream)
        assert pool.idle_count == 2
        for _ in range(5):
            read_body(forward(pool, GET))
        assert pool.opened == 4
    assert server.accepted == 4


def test_idle_connections_are_reused_most_recent_first(pool_factory: list[ServerPool]) -> None:
    numbers = iter(range(1, 100))

    def numbered(conn: socket.socket) -> None:
        number = next(numbers)
        keep_alive(lambda request: response(200, str(number).encode()))(conn)

    with ScriptedServer(numbered) as server:
        pool = make_pool(pool_factory, server.port)
        first, second = forward(pool, GET), forward(pool, GET)
        assert {read_body(second), read_body(first)} == {b"1", b"2"}
        # first was released last: it is taken first
        assert read_body(forward(pool, GET)) == b"1"
        assert read_body(forward(pool, GET)) == b"1"


def test_idle_connection_closed_by_the_server_is_detected_before_reuse(
    pool_factory: list[ServerPool],
) -> None:
    closed = threading.Event()

    def answer_once_then_close(conn: socket.socket) -> None:
        reader = Reader(conn)
        request = reader.read_request()
        assert request is not None
        conn.sendall(ok(request))
        conn.close()
        closed.set()

    seen: list[Request] = []
    answer = keep_alive(ok, seen=seen)
    connections = iter([answer_once_then_close, answer, answer])
    with ScriptedServer(lambda conn: next(connections)(conn)) as server:
        pool = make_pool(pool_factory, server.port)
        read_body(forward(pool, GET))
        assert closed.wait(5)
        time.sleep(0.05)  # let the FIN reach the client's socket
        # a body-bearing request is never resent, so it succeeding proves the check caught it
        assert read_body(forward(pool, POST)) == b"ok POST /x HTTP/1.1"
    assert [request.body for request in seen] == [b"hello"]
    assert pool.opened == 2


def test_idle_connection_with_stray_bytes_from_the_server_is_not_reused(
    pool_factory: list[ServerPool],
) -> None:
    sent = threading.Event()

    def late_stray_bytes(conn: socket.socket) -> None:
        reader = Reader(conn)
        while (request := reader.read_request()) is not None:
            conn.sendall(ok(request))
            if not sent.is_set():
                time.sleep(0.05)  # after the client has read the response
                conn.sendall(b"STRAY")
                sent.set()

    with ScriptedServer(late_stray_bytes) as server:
        pool = make_pool(pool_factory, server.port)
        read_body(forward(pool, GET))
        assert sent.wait(5)
        time.sleep(0.05)
        assert read_body(forward(pool, GET)) == b"ok GET /x HTTP/1.1"
    assert server.accepted == 2


def test_closed_port_is_connect_failed_and_retryable(pool_factory: list[ServerPool]) -> None:
    pool = make_pool(pool_factory, free_port())
    with pytest.raises(ConnectFailed) as failure:
        forward(pool, GET)
    assert failure.value.retryable
    assert pool.opened == 0


def test_connect_failed_leaves_the_request_body_unread(pool_factory: list[ServerPool]) -> None:
    pool = make_pool(pool_factory, free_port())
    body = gunicorn_environ(POST)["wsgi.input"]
    with pytest.raises(ConnectFailed):
        forward(pool, POST, body=body)
    assert body.read(100) == b"hello"


def test_connect_timeout_is_connect_failed(pool_factory: list[ServerPool]) -> None:
    # a listener that never accepts: once its accept queue is full, SYNs are dropped
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.settimeout(0.2)
                try:
                    filler.connect(("127.0.0.1", port))
                except TimeoutError:
                    filler.close()
                    break
                fillers.append(filler)
            else:
                pytest.fail("the accept queue never filled: no connect can time out here")
            pool = make_pool(pool_factory, port)
            started = time.monotonic()
            with pytest.raises(ConnectFailed):
                forward(pool, GET, connect_timeout=0.3)
            assert 0.25 < time.monotonic() - started < 3
        finally:
            for filler in fillers:
                filler.close()


def close_on_second_request(seen: list[Request]) -> ScriptedServer:
    """Connection 1 answers one request, then reads the next and closes without a word;
    later connections answer everything."""

    def first(conn: socket.socket) -> None:
        reader = Reader(conn)
        request = reader.read_request()
        assert request is not None
        seen.append(request)
        conn.sendall(ok(request))
        request = reader.read_request()
        if request is not None:
            seen.append(request)

    connections = iter([first])
    return ScriptedServer(lambda conn: next(connections, keep_alive(ok, seen=seen))(conn))


def test_bodyless_request_is_resent_once_when_a_reused_connection_closes_before_answering(
    pool_factory: list[ServerPool],
) -> None:
    seen: list[Request] = []
    with close_on_second_request(seen) as server:
        pool = make_pool(pool_factory, server.port)
        read_body(forward(pool, GET))
        assert read_body(forward(pool, b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")) == (
            b"ok GET /again HTTP/1.1"
        )
    assert [request.request_line for request in seen] == [
        "GET /x HTTP/1.1",
        "GET /again HTTP/1.1",
        "GET /again HTTP/1.1",
    ]
    assert server.accepted == 2


def test_request_with_a_body_is_never_resent_when_a_reused_connection_closes(
    pool_factory: list[ServerPool],
) -> None:
    seen: list[Request] = []
    with close_on_second_request(seen) as server:
        pool = make_pool(pool_factory, server.port)
        read_body(forward(pool, GET))
        with pytest.raises(BadResponse):
            forward(pool, POST)
    assert [request.request_line for request in seen] == ["GET /x HTTP/1.1", "POST /x HTTP/1.1"]
    assert server.accepted == 1


@pytest.mark.parametrize("method", [b"POST", b"PATCH", b"LOCK"])
def test_bodyless_non_idempotent_request_is_never_resent_when_a_reused_connection_closes(
    pool_factory: list[ServerPool], method: bytes
) -> None:
    # The server may have died while processing it: RFC 9112 9.3.1, a proxy MUST NOT retry
    # a non-idempotent request on its own.
    seen: list[Request] = []
    with close_on_second_request(seen) as server:
        pool = make_pool(pool_factory, server.port)
        read_body(forward(pool, GET))
        with pytest.raises(BadResponse) as failure:
            forward(pool, method + b" /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert not failure.value.retryable
    assert [request.request_line for request in seen] == [
        "GET /x HTTP/1.1",
        f"{method.decode()} /x HTTP/1.1",
    ]
    assert server.accepted == 1


def test_fresh_connection_closed_before_answering_is_not_resent(
    pool_factory: list[ServerPool],
) -> None:
    seen: list[Request] = []

    def read_and_close(conn: socket.socket) -> None:
        request = Reader(conn).read_request()
        assert request is not None
        seen.append(request)

    with ScriptedServer(read_and_close) as server:
        pool = make_pool(pool_factory, server.port)
        with pytest.raises(BadResponse) as failure:
            forward(pool, GET)
    assert not failure.value.retryable
    assert len(seen) == 1
    assert server.accepted == 1


def test_resend_happens_at_most_once(pool_factory: list[ServerPool]) -> None:
    seen: list[Request] = []

    def answer_first_only(conn: socket.socket) -> None:
        reader = Reader(conn)
        while (request := reader.read_request()) is not None:
            seen.append(request)
            if len(seen) > 1:
                return
            conn.sendall(ok(request))

    with ScriptedServer(answer_first_only) as server:
        pool = make_pool(pool_factory, server.port)
        read_body(forward(pool, GET))
        with pytest.raises(BadResponse):
            forward(pool, b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [request.request_line for request in seen] == [
        "GET /x HTTP/1.1",
        "GET /again HTTP/1.1",
        "GET /again HTTP/1.1",
    ]
    assert server.accepted == 2
