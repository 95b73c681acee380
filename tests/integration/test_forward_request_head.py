"""The request head sent to a server, built from environs made by gunicorn's own parser.

RFC 9110 7.6.1 (hop-by-hop fields), RFC 9112 3.2 (Host, origin-form); DESIGN.md invariant 7
(only configured servers are dialled, hop-by-hop headers are stripped, CR/LF refused).
"""

from __future__ import annotations

import pytest

from geoproxy.forward import (
    KEEP,
    BodyFraming,
    Framing,
    Keep,
    UnforwardableRequest,
    build_request_head,
)
from tests.integration.forward_scripted import gunicorn_environ


def head_of(
    raw: bytes,
    *,
    cookie: str | None | Keep = KEEP,
    append: tuple[tuple[str, str], ...] = (),
    server_close: bool = False,
    upgrade: bool = False,
) -> tuple[list[str], BodyFraming]:
    head, framing = build_request_head(
        gunicorn_environ(raw),
        cookie=cookie,
        append=append,
        server_close=server_close,
        upgrade=upgrade,
    )
    assert head.endswith(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    return lines, framing


def test_request_line_is_http11_origin_form_whatever_the_client_version() -> None:
    lines, _ = head_of(b"GET /a/b?c=d&e HTTP/1.0\r\nHost: h\r\n\r\n")
    assert lines[0] == "GET /a/b?c=d&e HTTP/1.1"


def test_absolute_form_target_becomes_origin_form_and_host_stays_the_clients() -> None:
    lines, _ = head_of(b"GET http://other.host:81/x?y HTTP/1.1\r\nHost: other.host:81\r\n\r\n")
    assert lines == ["GET /x?y HTTP/1.1", "host: other.host:81"]
    lines, _ = head_of(b"GET http://u:p@Other.Host:80/x HTTP/1.1\r\nHost: other.host\r\n\r\n")
    assert lines == ["GET /x HTTP/1.1", "host: other.host"]
    lines, _ = head_of(b"GET https://other.host/x HTTP/1.1\r\nHost: other.host:443\r\n\r\n")
    assert lines == ["GET /x HTTP/1.1", "host: other.host:443"]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET http://other.host/x HTTP/1.1\r\nHost: mine.example\r\n\r\n",
        b"GET http://other.host:81/x HTTP/1.1\r\nHost: other.host\r\n\r\n",
        b"GET https://other.host:80/x HTTP/1.1\r\nHost: other.host\r\n\r\n",
    ],
)
def test_absolute_form_target_whose_authority_is_not_the_host_is_refused(raw: bytes) -> None:
    # haproxy 2.6 answers 400: routing reads Host, and the request would name two hosts
    with pytest.raises(UnforwardableRequest):
        head_of(raw)


def test_absolute_form_target_without_path_becomes_slash() -> None:
    environ = gunicorn_environ(b"GET / HTTP/1.1\r\nHost: o.example\r\n\r\n")
    for raw_uri, target in [("http://o.example", "/"), ("http://o.example?q=1", "/?q=1")]:
        environ["RAW_URI"] = raw_uri
        head, _ = build_request_head(environ, cookie=KEEP, append=(), server_close=False)
        assert head.startswith(f"GET {target} HTTP/1.1\r\n".encode())


def test_request_without_host_gets_the_absolute_form_authority_or_an_empty_host() -> None:
    lines, _ = head_of(b"GET http://u@o.example:8080/p HTTP/1.0\r\nAccept: */*\r\n\r\n")
    assert lines == ["GET /p HTTP/1.1", "host: o.example:8080", "accept: */*"]
    lines, _ = head_of(b"GET /p HTTP/1.0\r\nAccept: */*\r\n\r\n")
    assert lines == ["GET /p HTTP/1.1", "host: ", "accept: */*"]


def test_options_asterisk_keeps_its_target() -> None:
    lines, _ = head_of(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert lines[0] == "OPTIONS * HTTP/1.1"


def test_authority_form_target_is_refused() -> None:
    environ = gunicorn_environ(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    environ.update(REQUEST_METHOD="CONNECT", RAW_URI="other.host:443")
    with pytest.raises(UnforwardableRequest):
        build_request_head(environ, cookie=KEEP, append=(), server_close=False)


def test_header_names_are_lower_cased_and_keep_the_clients_order() -> None:
    lines, framing = head_of(
        b"GET / HTTP/1.1\r\nX-Custom-Thing: One\r\nHost: h\r\nUser-Agent: UA/1\r\n"
        b"Accept: text/html\r\n\r\n"
    )
    assert lines[1:] == ["x-custom-thing: One", "host: h", "user-agent: UA/1", "accept: text/html"]
    assert framing == BodyFraming(Framing.NONE)
    assert not framing.has_body


def test_hop_by_hop_headers_are_removed() -> None:
    lines, _ = head_of(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nProxy-Connection: keep-alive\r\n"
        b"Keep-Alive: 300\r\nTE: trailers\r\nUpgrade: h2c\r\nX-End: 1\r\n\r\n"
    )
    assert lines[1:] == ["host: h", "x-end: 1"]


def test_headers_named_by_connection_are_removed() -> None:
    lines, _ = head_of(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret ,x-other-thing\r\n"
        b"X-Secret: s\r\nX-Other-Thing: o\r\nX-Kept: k\r\n\r\n"
    )
    assert lines[1:] == ["host: h", "x-kept: k"]


def test_expect_is_removed_since_gunicorn_already_answered_100_continue() -> None:
    lines, framing = head_of(
        b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert lines[1:] == ["host: h", "content-length: 3"]
    assert framing == BodyFraming(Framing.LENGTH, 3)


def test_content_length_and_content_type_keep_their_place() -> None:
    lines, framing = head_of(
        b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nHost: h\r\nContent-Length: 2\r\n"
        b"X-After: 1\r\n\r\n{}"
    )
    assert lines[1:] == [
        "content-type: application/json",
        "host: h",
        "content-length: 2",
        "x-after: 1",
    ]
    assert framing.has_body


def test_zero_content_length_is_sent_but_is_no_body() -> None:
    lines, framing = head_of(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    assert lines[1:] == ["host: h", "content-length: 0"]
    assert framing == BodyFraming(Framing.LENGTH, 0)
    assert not framing.has_body


def test_chunked_request_is_framed_chunked_again() -> None:
    lines, framing = head_of(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-After: 1\r\n\r\n"
        b"1\r\na\r\n0\r\n\r\n"
    )
    assert lines[1:] == ["host: h", "x-after: 1", "transfer-encoding: chunked"]
    assert framing == BodyFraming(Framing.CHUNKED)
    assert framing.has_body


def test_chunked_request_keeps_its_other_transfer_codings() -> None:
    lines, _ = head_of(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    )
    assert lines[-1] == "transfer-encoding: gzip, chunked"


def test_cookie_is_kept_replaced_in_place_or_removed() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: SERVERID=s1; JSESSIONID=abc\r\nAccept: */*\r\n\r\n"
    kept, _ = head_of(raw)
    assert kept[1:] == ["host: h", "cookie: SERVERID=s1; JSESSIONID=abc", "accept: */*"]
    replaced, _ = head_of(raw, cookie="JSESSIONID=abc")
    assert replaced[1:] == ["host: h", "cookie: JSESSIONID=abc", "accept: */*"]
    removed, _ = head_of(raw, cookie=None)
    assert removed[1:] == ["host: h", "accept: */*"]


def test_cookie_is_added_when_the_client_sent_none() -> None:
    lines, _ = head_of(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", cookie="a=1")
    assert lines[1:] == ["host: h", "cookie: a=1"]


def test_repeated_cookie_headers_leave_as_the_one_header_gunicorn_joined() -> None:
    lines, _ = head_of(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
    assert [line for line in lines if line.startswith("cookie:")] == ["cookie: a=1,b=2"]


def test_appended_headers_come_after_the_clients_and_connection_close_last() -> None:
    lines, _ = head_of(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        append=(("X-Forwarded-For", "127.0.0.1"),),
        server_close=True,
    )
    assert lines[1:] == [
        "host: h",
        "x-forwarded-for: 10.0.0.1",
        "x-forwarded-for: 127.0.0.1",
        "connection: close",
    ]


def test_an_upgrade_keeps_its_upgrade_header_and_asks_for_the_switch_last() -> None:
    lines, _ = head_of(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade, X-Hop\r\n"
        b"Upgrade: websocket\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nSec-WebSocket-Key: k\r\n\r\n",
        append=(("X-Forwarded-For", "127.0.0.1"),),
        server_close=True,
        upgrade=True,
    )
    assert lines[1:] == [
        "host: h",
        "upgrade: websocket",
        "sec-websocket-key: k",
        "x-forwarded-for: 127.0.0.1",
        "connection: upgrade",
    ]


def test_no_connection_header_is_sent_when_the_connection_is_kept() -> None:
    lines, _ = head_of(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert not any(line.lower().startswith("connection") for line in lines)


@pytest.mark.parametrize("value", ["a=1\r\nX-Injected: 1", "a=1\nb", "a\x00b"])
def test_cookie_or_appended_values_with_cr_lf_or_nul_are_refused(value: str) -> None:
    environ = gunicorn_environ(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(ValueError):
        build_request_head(environ, cookie=value, append=(), server_close=False)
    with pytest.raises(ValueError):
        build_request_head(environ, cookie=KEEP, append=(("X-A", value),), server_close=False)


def test_appended_header_name_must_be_a_token() -> None:
    environ = gunicorn_environ(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(ValueError):
        build_request_head(environ, cookie=KEEP, append=(("X A", "1"),), server_close=False)


def test_transfer_encoding_not_ending_with_chunked_is_unforwardable() -> None:
    environ = gunicorn_environ(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\na")
    environ["HTTP_TRANSFER_ENCODING"] = "chunked, gzip"
    with pytest.raises(UnforwardableRequest):
        build_request_head(environ, cookie=KEEP, append=(), server_close=False)
