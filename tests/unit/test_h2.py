"""HTTP/2's pure parts: the ``tune.h2.*`` keywords and ``bind ... proto h2`` (HAProxy 2.6's
meaning and bounds), and a stream's header list read as a request (RFC 9113 8.1 to 8.3)."""

from __future__ import annotations

import pytest

from geoproxy.config import parse_text
from geoproxy.config.model import Config, H2Settings, RequestLimits
from geoproxy.errors import ConfigError
from geoproxy.runtime.h2_stream import parse_request

HEAD = ("defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\n")
REST = "frontend f\n    bind :80 proto h2\n    default_backend b\nbackend b\n" \
       "    server s1 127.0.0.1:9001\n"


def parse(global_lines: str, rest: str = REST) -> Config:
    return parse_text("global\n" + global_lines + HEAD + rest, "t.cfg", env={})


def errors(global_lines: str, rest: str = REST) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(global_lines, rest)
    return "\n".join(str(error) for error in caught.value.errors)


def test_tune_h2_keywords_set_the_settings_and_default_to_haproxys() -> None:
    assert parse("").global_.h2 == H2Settings(4096, 65535, 100, 16384)
    tuned = parse("    tune.h2.header-table-size 8192\n    tune.h2.initial-window-size 1048576\n"
                  "    tune.h2.max-concurrent-streams 32\n    tune.h2.max-frame-size 32768\n")
    assert tuned.global_.h2 == H2Settings(8192, 1048576, 32, 32768)
    assert not [w for w in tuned.warnings if "tune.h2" in str(w)]


@pytest.mark.parametrize("line", [
    "tune.h2.header-table-size 65537", "tune.h2.max-frame-size 1000",
    "tune.h2.max-concurrent-streams 0", "tune.h2.initial-window-size x",
])
def test_tune_h2_values_out_of_bounds_are_refused_with_file_line_and_keyword(line: str) -> None:
    message = errors(f"    {line}\n")
    assert "[t.cfg:2]" in message and line.split()[0] in message


def test_bind_proto_h2_marks_the_bind_and_other_protocols_are_refused() -> None:
    assert [b.proto for b in parse("").frontends[0].binds] == ["h2"]
    message = errors("", REST.replace("proto h2", "proto h1"))
    assert "'proto'" in message and "h2" in message


LIMITS = RequestLimits(max_head=1000, max_fields=5)
BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/a?b=1"),
        (b":authority", b"example.com")]


def test_a_request_maps_to_the_http1_fields_host_first_and_cookies_joined() -> None:
    request = parse_request(BASE + [(b"cookie", b"a=1"), (b"accept", b"x"), (b"cookie", b"b=2"),
                                    (b"host", b"ignored"), (b"x_under", b"dropped")],
                            LIMITS, False)
    assert request is not None
    assert request.method == "GET" and request.target == "http://example.com/a?b=1"
    assert list(request.fields.items()) == [
        ("HTTP_HOST", "example.com"), ("HTTP_COOKIE", "a=1; b=2"), ("HTTP_ACCEPT", "x")]


def test_a_body_without_content_length_goes_chunked_and_no_authority_keeps_the_path() -> None:
    request = parse_request(BASE[:3], LIMITS, True)
    assert request is not None and request.target == "/a?b=1"
    assert request.fields == {"HTTP_TRANSFER_ENCODING": "chunked"}
    sized = parse_request(BASE + [(b"content-length", b"3")], LIMITS, True)
    assert sized is not None and "HTTP_TRANSFER_ENCODING" not in sized.fields


@pytest.mark.parametrize("headers", [
    BASE + [(b"connection", b"keep-alive")],
    BASE + [(b"keep-alive", b"1")],
    BASE + [(b"proxy-connection", b"1")],
    BASE + [(b"transfer-encoding", b"chunked")],
    BASE + [(b"upgrade", b"h2c")],
    BASE + [(b"te", b"gzip")],
    BASE + [(b"X-Upper", b"1")],
    BASE + [(b"x-bad", b"a\r\nb")],
    BASE + [(b"x-nul", b"a\0b")],
    BASE + [(b":unknown", b"1")],
    BASE + [(b":path", b"/again")],
    [BASE[0], (b"accept", b"x")] + BASE[1:],
    BASE[1:],
    [BASE[0], BASE[2], BASE[3]],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"")],
    [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")],
    BASE[:3] + [(b"host", b"a"), (b"host", b"b")],
    BASE + [(b"x-%d" % i, b"1") for i in range(6)],
])
def test_malformed_requests_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    assert parse_request(headers, LIMITS, False) is None


def test_te_trailers_and_connect_are_accepted() -> None:
    assert parse_request(BASE + [(b"te", b"trailers")], LIMITS, False) is not None
    connect = parse_request([(b":method", b"CONNECT"), (b":authority", b"a:1")], LIMITS, False)
    assert connect is not None and connect.target == "a:1"
