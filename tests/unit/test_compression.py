"""geoproxy.proxy.compression: which requests and responses get compressed (HAProxy 2.6's
flt_http_comp.c rules; the wire behaviour is compared with haproxy in
tests/e2e/test_small_pieces_vs_haproxy.py) and the streaming compressor."""

from __future__ import annotations

import gzip
import zlib

import pytest

from geoproxy.config.model import Compression, CompressionAlgorithm
from geoproxy.proxy.compression import (
    CompressedBody,
    CompressionPolicy,
    choose_algorithm,
    compress_response,
)

A = CompressionAlgorithm
GZIP_DEFLATE = CompressionPolicy((A.GZIP, A.DEFLATE), (), False)


@pytest.mark.parametrize(("accept", "agent", "chosen"), [
    ("gzip", "", A.GZIP),
    ("GZIP", "", A.GZIP),
    ("deflate", "", A.DEFLATE),
    ("gzip, deflate", "", A.GZIP),
    ("deflate;q=0.5, gzip", "", A.GZIP),
    ("gzip;q=0", "", None),
    ("gzip ; q=0.001", "", A.GZIP),
    ("*", "", A.DEFLATE),  # the last one configured, as HAProxy's reversed list
    ("br, x-gzip, identity", "", None),
    ("", "", None),
    ("gzip", "Mozilla/4.0 (compatible; MSIE 5.0)", None),
    ("gzip", "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", A.GZIP),
    ("gzip", "Mozilla/5.0 (X11)", A.GZIP),
])
def test_the_algorithm_follows_accept_encoding_and_q_values(
    accept: str, agent: str, chosen: CompressionAlgorithm | None
) -> None:
    environ = {"HTTP_ACCEPT_ENCODING": accept, "HTTP_USER_AGENT": agent}
    assert choose_algorithm(environ, GZIP_DEFLATE) is chosen


def test_identity_is_chosen_when_configured_and_nothing_else_fits() -> None:
    policy = CompressionPolicy((A.IDENTITY, A.GZIP), (), False)
    assert choose_algorithm({"HTTP_ACCEPT_ENCODING": "br"}, policy) is A.IDENTITY


def test_the_backends_algorithms_and_types_win_over_the_frontends() -> None:
    frontend = Compression((A.GZIP,), ("text/html",), True)
    backend = Compression((), ("text/css",), False)
    policy = CompressionPolicy.of(frontend, backend)
    assert policy == CompressionPolicy((A.GZIP,), ("text/css",), True)
    assert CompressionPolicy.of(None, Compression((), ("text/css",))) is None


HTML = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "2000")]
OK = (True, True, True)


@pytest.mark.parametrize(("status", "headers", "facts", "compressed"), [
    (200, HTML, OK, True),
    (203, HTML, OK, True),
    (206, HTML, OK, False),
    (304, HTML, OK, False),
    (200, HTML, (False, True, True), False),  # HTTP/1.0 request or HEAD
    (200, HTML, (True, False, True), False),  # HTTP/1.0 response
    (200, HTML, (True, True, False), False),  # body ends at the close
    (200, [("Content-Type", "text/html"), ("Content-Length", "0")], OK, False),
    (200, [*HTML, ("Content-Encoding", "br")], OK, False),
    (200, [*HTML, ("Cache-Control", "public, No-Transform")], OK, False),
    (200, [*HTML, ("ETag", "abc")], OK, False),
    (200, [*HTML, ("ETag", '"a"'), ("ETag", '"b"')], OK, False),
    (200, [("Content-Type", "multipart/form-data")], OK, False),
    (200, [("Content-Length", "10")], OK, True),  # no Content-Type, no type listed
])
def test_which_responses_are_compressed(
    status: int, headers: list[tuple[str, str]], facts: tuple[bool, bool, bool],
    compressed: bool,
) -> None:
    changed = compress_response(GZIP_DEFLATE, A.GZIP, status, headers, facts)
    assert (changed is not None) is compressed


def test_listed_types_are_prefixes_compared_without_case() -> None:
    policy = CompressionPolicy((A.GZIP,), ("text/html",), False)
    assert compress_response(policy, A.GZIP, 200, [("Content-Type", "TEXT/HTML;x=1")], OK)
    assert compress_response(policy, A.GZIP, 200, [("Content-Type", "text/css")], OK) is None
    assert compress_response(policy, A.GZIP, 200, [("Content-Length", "9")], OK) is None


def test_compressed_headers_lose_the_length_weaken_the_etag_and_gain_vary_and_encoding() -> None:
    headers = [("Content-Type", "text/html"), ("ETag", '"v1"'), ("Content-Length", "10"),
               ("Vary", "Origin")]
    assert compress_response(GZIP_DEFLATE, A.DEFLATE, 200, headers, OK) == [
        ("Content-Type", "text/html"), ("ETag", 'W/"v1"'), ("Vary", "Origin"),
        ("vary", "Accept-Encoding"), ("content-encoding", "deflate")]


@pytest.mark.parametrize(("algorithm", "decompress"), [
    (A.GZIP, gzip.decompress),
    (A.DEFLATE, zlib.decompress),
    (A.RAW_DEFLATE, lambda data: zlib.decompress(data, -zlib.MAX_WBITS)),
])
def test_the_body_streams_piece_by_piece_and_decompresses_to_the_original(
    algorithm: CompressionAlgorithm, decompress: object
) -> None:
    pieces = [b"hello " * 1000, b"", b"world " * 3000]
    closed = []

    class Body:
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield from pieces

        def close(self) -> None:
            closed.append(True)

    body = CompressedBody(Body(), algorithm)
    out = list(body)
    assert len(out) == 3  # one flushed piece per non-empty piece, then the trailer
    assert decompress(b"".join(out)) == b"".join(pieces)  # type: ignore[operator]
    body.close()
    assert closed == [True]
