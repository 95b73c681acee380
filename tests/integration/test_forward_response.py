"""Reading a server's response: framing (RFC 9112 6.3), interim responses, the headers handed
on, and when the connection is reused.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from geoproxy.forward import CHUNK_SIZE, ServerPool
from tests.integration.forward_scripted import Reader, ScriptedServer, forward, read_body, response

GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
HEAD = b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n"


def answer(*raws: bytes, close: bool = False) -> ScriptedServer:
    """A server answering the n-th request on a connection with ``raws[n]`` (the last one
    repeats), closing the connection after each answer when ``close``."""

    def handler(conn: socket.socket) -> None:
        reader = Reader(conn)
        count = 0
        while reader.read_request() is not None:
            conn.sendall(raws[min(count, len(raws) - 1)])
            count += 1
            if close:
                return

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


def test_response_to_head_has_no_body_and_keeps_its_content_length(
    pools: list[ServerPool],
) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    with answer(raw) as server:
        pool = pool_for(pools, server)
        for _ in range(3):
            upstream = forward(pool, HEAD)
            assert upstream.headers == [("Content-Length", "1000")]
            assert read_body(upstream) == b""
    assert server.accepted == 1


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_responses_have_no_body(pools: list[ServerPool], status: int) -> None:
    headers = [("Content-Length", "50")] if status == 304 else []
    with answer(response(status, headers=headers, length=False)) as server:
        pool = pool_for(pools, server)
        for _ in range(2):
            upstream = forward(pool, GET)
            assert upstream.status == status
            assert read_body(upstream) == b""
    assert server.accepted == 1


def test_interim_responses_are_skipped(pools: list[ServerPool]) -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        + response(201, b"made", [("Location", "/made")], reason="Created")
    )
    with answer(raw) as server:
        upstream = forward(pool_for(pools, server), GET)
        assert (upstream.status, upstream.reason) == (201, "Created")
        assert upstream.headers == [("Location", "/made"), ("Content-Length", "4")]
        assert read_body(upstream) == b"made"


def test_101_is_returned_with_its_upgrade_headers_and_never_reused(
    pools: list[ServerPool],
) -> None:
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    with answer(raw) as server:
        pool = pool_for(pools, server)
        upstream = forward(pool, GET)
        assert upstream.status == 101
        assert upstream.headers == [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        upstream.close()
        assert pool.idle_count == 0


def test_a_101_hands_its_socket_over_with_what_the_server_sent_after_the_head(
    pools: list[ServerPool],
) -> None:
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nfirst"
    with answer(raw) as server:
        pool = pool_for(pools, server)
        upstream = forward(pool, GET)
        assert list(upstream) == []  # no body: what follows is the new protocol's
        sock, pending = upstream.detach()
        try:
            assert pending == b"first"
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")  # still open: the server answers
            sock.settimeout(5)
            assert sock.recv(100).startswith(b"HTTP/1.1 101")
        finally:
            sock.close()
        upstream.close()
        assert pool.idle_count == 0
        with pytest.raises(ValueError):
            upstream.detach()


def test_chunked_body_is_decoded_and_the_connection_reused(pools: list[ServerPool]) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\nA \r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    with answer(raw) as server:
        pool = pool_for(pools, server)
        for _ in range(3):
            upstream = forward(pool, GET)
            assert upstream.headers == [("X-A", "1")]
            assert read_body(upstream) == b"hello 0123456789"
    assert server.accepted == 1


def test_small_chunks_already_received_come_out_together(pools: list[ServerPool]) -> None:
    chunks = b"".join(b"a\r\n%010d\r\n" % index for index in range(100))
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    with answer(raw) as server:
        pieces = list(forward(pool_for(pools, server), GET))
    assert b"".join(pieces) == b"".join(b"%010d" % index for index in range(100))
    assert len(pieces) <= 5


def test_large_chunks_come_out_in_bounded_pieces(pools: list[ServerPool]) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB in one chunk
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n" % (
        len(data),
        data,
    )
    with answer(raw) as server:
        upstream = forward(pool_for(pools, server), GET)
        pieces = list(upstream)
        upstream.close()
    assert b"".join(pieces) == data
    assert max(len(piece) for piece in pieces) <= CHUNK_SIZE


def test_content_length_body_comes_out_in_bounded_pieces(pools: list[ServerPool]) -> None:
    data = bytes(range(256)) * 4096
    with answer(response(200, data)) as server:
        upstream = forward(pool_for(pools, server), GET)
        pieces = list(upstream)
        upstream.close()
    assert b"".join(pieces) == data
    assert max(len(piece) for piece in pieces) <= CHUNK_SIZE


def test_body_until_close_is_read_to_the_end_and_not_reused(pools: list[ServerPool]) -> None:
    with answer(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end", close=True) as server:
        pool = pool_for(pools, server)
        for _ in range(2):
            assert read_body(forward(pool, GET)) == b"until the end"
        assert pool.idle_count == 0
    assert server.accepted == 2


def test_hop_by_hop_and_connection_named_response_headers_are_removed(
    pools: list[ServerPool],
) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: s\r\nConnection: keep-alive, X-Hop\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n"
        b"X-Hop: 1\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 2\r\n\r\nok"
    )
    with answer(raw) as server:
        upstream = forward(pool_for(pools, server), GET)
        assert upstream.headers == [
            ("Server", "s"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("Content-Length", "2"),
        ]
        assert read_body(upstream) == b"ok"


def test_repeated_equal_content_lengths_become_one(pools: list[ServerPool]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\ncontent-length: 2, 2\r\n\r\nok"
    with answer(raw) as server:
        upstream = forward(pool_for(pools, server), GET)
        assert upstream.headers == [("Content-Length", "2"), ("X", "y")]
        assert read_body(upstream) == b"ok"


def test_transfer_encoding_wins_over_content_length_and_the_connection_is_not_reused(
    pools: list[ServerPool],
) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    with answer(raw) as server:
        pool = pool_for(pools, server)
        upstream = forward(pool, GET)
        assert upstream.headers == []
        assert read_body(upstream) == b"ok"
        assert pool.idle_count == 0


def test_transfer_encoding_not_ending_in_chunked_is_read_until_close(
    pools: list[ServerPool],
) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw bytes"
    with answer(raw, close=True) as server:
        assert read_body(forward(pool_for(pools, server), GET)) == b"raw bytes"


def test_status_line_without_reason_is_accepted(pools: list[ServerPool]) -> None:
    with answer(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n") as server:
        upstream = forward(pool_for(pools, server), GET)
        assert (upstream.status, upstream.reason) == (404, "")
        upstream.close()


def test_bytes_after_the_body_prevent_reuse(pools: list[ServerPool]) -> None:
    with answer(response(200, b"ok") + b"HTTP/1.1 200 OK\r\n") as server:
        pool = pool_for(pools, server)
        assert read_body(forward(pool, GET)) == b"ok"
        assert pool.idle_count == 0


def test_abandoned_body_closes_the_connection(pools: list[ServerPool]) -> None:
    with answer(response(200, b"x" * 300_000)) as server:
        pool = pool_for(pools, server)
        upstream = forward(pool, GET)
        assert len(next(iter(upstream))) > 0
        upstream.close()
        upstream.close()
        assert pool.idle_count == 0
        assert read_body(forward(pool, GET)) == b"x" * 300_000
    assert server.accepted == 2


def test_body_is_iterated_once(pools: list[ServerPool]) -> None:
    with answer(response(200, b"once")) as server:
        upstream = forward(pool_for(pools, server), GET)
        assert b"".join(upstream) == b"once"
        assert b"".join(upstream) == b""
        upstream.close()


def test_connection_goes_back_to_the_pool_as_the_last_body_byte_arrives(
    pools: list[ServerPool],
) -> None:
    with answer(response(200, b"ok")) as server:
        pool = pool_for(pools, server)
        upstream = forward(pool, GET)
        assert next(iter(upstream)) == b"ok"
        assert pool.idle_count == 1
        upstream.close()
        assert pool.idle_count == 1
