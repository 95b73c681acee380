"""Bodies stream both ways in bounded memory (DESIGN.md invariant 6); a chunked upload is
re-chunked; a server may answer before the upload ends.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from geoproxy.forward import CHUNK_SIZE, ServerPool
from tests.integration.forward_scripted import (
    Reader,
    Request,
    ScriptedServer,
    forward,
    keep_alive,
    read_body,
    response,
    rss_bytes,
)

MIB = 1 << 20
BIG = 300 * MIB
RSS_LIMIT = 40 * MIB
BLOCK = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def pools() -> Iterator[list[ServerPool]]:
    made: list[ServerPool] = []
    yield made
    for pool in made:
        pool.close()


def pool_for(pools: list[ServerPool], server: ScriptedServer) -> ServerPool:
    pools.append(ServerPool("127.0.0.1", server.port))
    return pools[-1]


class GeneratedBody:
    """A request body of ``total`` bytes made on demand; records the peak RSS seen."""

    def __init__(self, total: int) -> None:
        self.remaining = total
        self.baseline = rss_bytes()
        self.peak = self.baseline
        self.reads = 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        if self.reads % 64 == 0:
            self.peak = max(self.peak, rss_bytes())
        size = min(size, self.remaining, MIB)
        self.remaining -= size
        return BLOCK[:size]


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


def counting_server() -> ScriptedServer:
    """Answers each request with the length and SHA-256 of the body it received."""

    def handler(conn: socket.socket) -> None:
        reader = Reader(conn)
        view = memoryview(bytearray(MIB))
        while (head := reader.read_head()) is not None:
            length = content_length(head)
            digest = hashlib.sha256(reader.buf)
            remaining = length - len(reader.buf)
            reader.buf = b""
            while remaining:
                received = conn.recv_into(view[: min(remaining, MIB)])
                if not received:
                    return
                digest.update(view[:received])
                remaining -= received
            conn.sendall(response(200, f"{length} {digest.hexdigest()}".encode()))

    return ScriptedServer(handler)


def test_300_mb_download_streams_in_bounded_memory(pools: list[ServerPool]) -> None:
    def download(conn: socket.socket) -> None:
        Reader(conn).read_request()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
        for _ in range(BIG // MIB):
            conn.sendall(BLOCK)

    with ScriptedServer(download) as server:
        baseline = peak = rss_bytes()
        upstream = forward(pool_for(pools, server), b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        total = 0
        for count, piece in enumerate(upstream):
            assert len(piece) <= CHUNK_SIZE
            total += len(piece)
            if count % 256 == 0:
                peak = max(peak, rss_bytes())
        upstream.close()
    assert total == BIG
    assert peak - baseline < RSS_LIMIT


def test_300_mb_upload_streams_in_bounded_memory(pools: list[ServerPool]) -> None:
    body = GeneratedBody(BIG)
    with counting_server() as server:
        raw = b"PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % BIG
        answer = read_body(forward(pool_for(pools, server), raw, body=body, server_timeout=30))
    expected = hashlib.sha256()
    for _ in range(BIG // MIB):
        expected.update(BLOCK)
    assert answer == f"{BIG} {expected.hexdigest()}".encode()
    assert body.reads >= BIG // CHUNK_SIZE
    assert body.peak - body.baseline < RSS_LIMIT


def test_chunked_upload_is_sent_chunked(pools: list[ServerPool]) -> None:
    seen: list[Request] = []

    def echo(request: Request) -> bytes:
        return response(200, request.body)

    pieces = [b"a" * 10, b"b" * 70_000, b"c", b"d" * 200_000]
    chunked = b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    raw = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    with ScriptedServer(keep_alive(echo, seen=seen)) as server:
        pool = pool_for(pools, server)
        assert read_body(forward(pool, raw)) == b"".join(pieces)
        empty = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        assert read_body(forward(pool, empty)) == b""
    assert [request.header("transfer-encoding") for request in seen] == ["chunked", "chunked"]
    assert [request.header("content-length") for request in seen] == [None, None]
    assert server.accepted == 1


def test_server_answering_and_closing_during_an_upload_has_its_answer_returned(
    pools: list[ServerPool],
) -> None:
    def refuse(conn: socket.socket) -> None:
        Reader(conn).read_head()
        conn.sendall(response(413, b"too big", [("Connection", "close")], reason="Too Large"))

    with ScriptedServer(refuse) as server:
        pool = pool_for(pools, server)
        raw = b"PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (50 * MIB)
        body = GeneratedBody(50 * MIB)
        upstream = forward(pool, raw, body=body)
        assert upstream.status == 413
        assert read_body(upstream) == b"too big"
        assert body.remaining > 0
        assert pool.idle_count == 0


def test_server_answering_early_but_no_longer_reading_has_its_answer_returned(
    pools: list[ServerPool],
) -> None:
    done = threading.Event()

    def refuse_and_wait(conn: socket.socket) -> None:
        Reader(conn).read_head()
        conn.sendall(response(413, b"too big", reason="Too Large"))
        done.wait(10)

    with ScriptedServer(refuse_and_wait) as server:
        pool = pool_for(pools, server)
        raw = b"PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (50 * MIB)
        started = time.monotonic()
        try:
            upstream = forward(pool, raw, body=GeneratedBody(50 * MIB), server_timeout=5)
            assert upstream.status == 413
            assert read_body(upstream) == b"too big"
        finally:
            done.set()
        assert time.monotonic() - started < 2
        # the upload was cut short: the connection cannot carry another request
        assert pool.idle_count == 0


def test_interim_response_during_an_upload_is_skipped(pools: list[ServerPool]) -> None:
    def continue_then_count(conn: socket.socket) -> None:
        reader = Reader(conn)
        head = reader.read_head()
        assert head is not None
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(0.05)
        size = len(reader.read_exact(5 * MIB))
        conn.sendall(response(200, str(size).encode()))

    with ScriptedServer(continue_then_count) as server:
        raw = b"PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (5 * MIB)
        upstream = forward(pool_for(pools, server), raw, body=GeneratedBody(5 * MIB))
        assert upstream.status == 200
        assert read_body(upstream) == str(5 * MIB).encode()
