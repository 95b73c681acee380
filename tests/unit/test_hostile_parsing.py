"""Properties of the code that reads what clients and servers send (hypothesis), over arbitrary
and over well-formed input: the request parser (``geoproxy.runtime.http1``), the request head
built for a server (``geoproxy.forward.request_head``), the response head parser
(``geoproxy.forward.response``) and prefix-mode persistence cookies.

- The request parser never raises: whatever the bytes, a request comes out clean (a token
  method, no control character in its target or field values, a valid Host) or the connection
  gets HAProxy's 400, 414 or 431.
- Where a read ends does not change what is parsed: well-formed pipelined requests split at
  any points parse as they do in one read (a head behind a large body included).
- A request head geoproxy builds for a server is one request that the strict parser reads
  back with the same method, target and fields.
- A server's response head is parsed or refused with ``BadResponse``; nothing else, and what
  is handed on has no CR, LF or NUL.
- A prefix-mode cookie geoproxy gives the client routes its next request back to the server
  that set it, and that server gets its own value back; an ``insert indirect`` cookie never
  reaches a server, whatever separators surround it.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from geoproxy.balance.view import ServerView
from geoproxy.config.model import CookieMode, CookiePolicy, Location, RequestLimits
from geoproxy.errors import BadResponse
from geoproxy.forward.request_head import KEEP, UnforwardableRequest, build_request_head
from geoproxy.forward.response import parse_head
from geoproxy.persistence.cookie_header import cookie_pairs, parse_set_cookie
from geoproxy.persistence.cookies import read_request, rewrite_response
from geoproxy.persistence.result import KEEP as KEEP_COOKIE
from geoproxy.persistence.result import PersistenceRequest
from geoproxy.runtime.http1 import ClientReader, Request

SMALL = RequestLimits(max_head=2048, max_fields=20)
FAST = settings(max_examples=200, deadline=None)
TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HOST_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class NoSocket:
    """What ``ClientReader`` asks of a socket before it reads: these tests only feed it."""

    def gettimeout(self) -> float | None:
        return None


def parsed(data: list[bytes], limits: RequestLimits = SMALL) -> ClientReader:
    reader = ClientReader(NoSocket(), limits)
    for piece in data:
        reader.feed(piece)
    return reader


def summary(request: Request) -> tuple[Any, ...]:
    return (
        request.method,
        request.target,
        request.version,
        sorted(request.fields.items()),
        b"".join(request.chunks),
        request.complete,
        request.error,
    )


# -- arbitrary bytes ---------------------------------------------------------------------------

REQUEST_LINES = st.sampled_from(
    [
        b"GET / HTTP/1.1",
        b"POST /x?q=1 HTTP/1.1",
        b"BREW /pot HTTP/1.0",
        b"GET http://other.example/x HTTP/1.1",
        b"CONNECT other.example:443 HTTP/1.1",
        b"GET /a b HTTP/1.1",
        b"GET / HTTP/2.0",
        b"\r\nGET / HTTP/1.1",
    ]
)
FIELD_LINES = st.sampled_from(
    [
        b"Host: t",
        b"Host: a b",
        b"Host: [::1]:80",
        b"Host: x@y",
        b"Content-Length: 3",
        b"Content-Length: 3, 4",
        b"Content-Length: -3",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip",
        b"Transfer-Encoding : chunked",
        b"Cookie: a=1; b",
        b"Cookie: ;;=x",
        b"X_Under: 1",
        b"X-Empty:",
        b"X: \x00",
        b"X: a\rb",
        b" folded",
        b"Expect: 100-continue",
        b"Connection: close",
    ]
)
ENDS = st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r"])  # mostly CRLF: mostly parsed
BODIES = st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"zz\r\n", b"0\r\n\r\n"])


@st.composite
def hostile_requests(draw: st.DrawFn) -> bytes:
    """Requests put together from valid and broken parts, mostly well framed."""
    line = draw(REQUEST_LINES)
    fields = draw(st.lists(FIELD_LINES, max_size=6))
    end = draw(ENDS)
    head = end.join([line, *fields]) + end + end
    return head + draw(BODIES)


HOSTILE_BYTES = (
    st.binary(max_size=300)
    | st.lists(hostile_requests(), min_size=1, max_size=3).map(b"".join)
)


@FAST
@given(HOSTILE_BYTES, st.integers(min_value=1, max_value=64))
def test_the_request_parser_never_raises_and_yields_clean_requests_or_an_answer(
    data: bytes, step: int
) -> None:
    reader = parsed([data[i : i + step] for i in range(0, len(data), step)])
    for request in reader.ready:
        if request.error is not None:
            assert request.error.status in (400, 414, 431)
            continue
        assert TOKEN_RE.fullmatch(request.method), request.method
        assert request.version in ("1.0", "1.1")
        assert not re.search(rb"[\x00-\x20\x7f]", request.target), request.target
        for key, value in request.fields.items():
            assert key.startswith("HTTP_") or key in ("CONTENT_LENGTH", "CONTENT_TYPE")
            assert key != "HTTP_X_UNDER", "a name with '_' is dropped"
            assert not CONTROL.search(value), (key, value)
        host = request.fields.get("HTTP_HOST")
        assert host is None or HOST_RE.fullmatch(host)
    if reader.error is not None:
        assert reader.error.status in (400, 414, 431)


# -- well-formed requests, split anywhere ------------------------------------------------------

NAMES = st.sampled_from(["Accept", "X-Trace", "Cookie", "User-Agent", "X-Dup", "Content-Type"])
VALUES = st.text(alphabet="abcxyz019 =;,/:.-~", max_size=30).map(str.strip)
PATHS = st.text(alphabet="abcz019/-._~%?=&;", max_size=40).map(lambda p: "/" + p)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "BREW"]))
    lines = [f"{method} {draw(PATHS)} HTTP/1.1", "Host: t"]
    lines += [f"{n}: {v}" for n, v in draw(st.lists(st.tuples(NAMES, VALUES), max_size=6))]
    body = draw(st.binary(max_size=20) | st.integers(0, 30_000).map(lambda n: b"b" * n))
    if method == "BREW":
        body = b""  # an unknown method must start its read (http1 rule 2): sent on its own
    if body and draw(st.booleans()):
        cut = draw(st.integers(0, len(body)))
        chunks = [part for part in (body[:cut], body[cut:]) if part]
        framed = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        return ("\r\n".join(lines + ["Transfer-Encoding: chunked", "", ""])).encode() + framed
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines + ["", ""])).encode() + body


@FAST
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(0, 70_000), max_size=5))
def test_where_reads_end_does_not_change_what_is_parsed(
    pipelined: list[bytes], cuts: list[int]
) -> None:
    if any(r.startswith(b"BREW") for r in pipelined[1:]):
        pipelined = [r for r in pipelined if not r.startswith(b"BREW")] or pipelined[:1]
    data = b"".join(pipelined)
    whole = parsed([data])
    assert whole.error is None
    assert len(whole.ready) == len(pipelined)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]
    split = parsed(pieces)
    assert split.error is None
    assert [summary(r) for r in split.ready] == [summary(r) for r in whole.ready]


# -- the head sent to a server reads back as the same request ---------------------------------

HOP_BY_HOP = {"HTTP_CONNECTION", "HTTP_TRANSFER_ENCODING", "HTTP_TE", "HTTP_UPGRADE"}


@FAST
@given(requests())
def test_the_head_sent_to_a_server_reads_back_as_the_same_request(raw: bytes) -> None:
    reader = parsed([raw], RequestLimits())
    request = reader.ready[0]
    assert request.error is None
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "RAW_URI": request.target.decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        **request.fields,
    }
    try:
        head, _ = build_request_head(environ, cookie=KEEP, append=(), server_close=False)
    except UnforwardableRequest:
        return
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
    again = parsed([head], RequestLimits()).ready[0]
    assert (again.method, again.target, again.error) == (request.method, request.target, None)
    sent = {k: v for k, v in request.fields.items() if k not in HOP_BY_HOP}
    if not sent.get("CONTENT_TYPE", "x"):
        del sent["CONTENT_TYPE"]  # WSGI's empty CONTENT_TYPE means none (request_head)
    received = {k: v for k, v in again.fields.items() if k not in HOP_BY_HOP}
    assert received == sent


# -- response heads ----------------------------------------------------------------------------

RESPONSE_LINES = st.sampled_from(
    [
        "Set-Cookie: a=1",
        "Set-Cookie: a=1\rX-Injected: 1",
        "Set-Cookie: a=1\nX-Injected: 1",
        "Set-Cookie: a=\x001",
        " folded",
        "X Bad: 1",
        "Content-Length: 3",
        "Content-Length: 3, 4",
        "Transfer-Encoding: chunked",
        "Connection: close, X-Drop",
        "X-Drop: 1",
        "\x7f: 1",
        "",
    ]
)
STATUS_LINES = st.sampled_from(
    ["HTTP/1.1 200 OK", "HTTP/1.0 304 Not Modified", "HTTP/1.1 99 X", "HTTP/2 200"]
)
RESPONSE_HEADS = st.binary(max_size=200) | st.tuples(
    STATUS_LINES,
    st.lists(RESPONSE_LINES, max_size=8),
).map(lambda parts: "\r\n".join([parts[0], *parts[1]]).encode("latin-1"))


@FAST
@given(RESPONSE_HEADS, st.booleans())
def test_a_response_head_is_parsed_clean_or_refused_as_a_bad_response(
    head: bytes, is_head: bool
) -> None:
    try:
        response = parse_head(head, is_head=is_head)
    except BadResponse:
        return
    assert 100 <= response.status <= 599
    for name, value in response.headers:
        assert TOKEN_RE.fullmatch(name), name
        assert not CONTROL.search(value), value


# -- prefix-mode cookies -----------------------------------------------------------------------

PREFIX = CookiePolicy("SRV", CookieMode.PREFIX, Location("test", 1))
SERVERS = [ServerView("s1", 0, 1, cookie="s1"), ServerView("s2", 1, 1, cookie="s2")]
# RFC 6265 cookie-octets, '~' (the prefix delimiter) included
COOKIE_OCTETS = st.text(
    alphabet=st.sampled_from("!#$%&'()*+-./:<=>?@[]^_`{|}~0123456789abcXYZ"), min_size=1,
    max_size=24,
)


@FAST
@given(COOKIE_OCTETS, st.sampled_from(SERVERS), st.sampled_from(["", "; Path=/", "; HttpOnly"]))
def test_a_prefixed_cookie_routes_back_to_its_server_with_the_servers_own_value(
    value: str, server: ServerView, attributes: str
) -> None:
    first = read_request(PREFIX, SERVERS, PersistenceRequest("GET"), 0.0)
    response = [("Set-Cookie", f"SRV={value}{attributes}")]
    rewritten = rewrite_response(first, server, 200, response, 0.0)
    (set_cookie,) = [v for n, v in rewritten.headers if n.lower() == "set-cookie"]
    assert not CONTROL.search(set_cookie)
    pair = parse_set_cookie(set_cookie)
    assert pair is not None and (pair.name, pair.value) == ("SRV", f"{server.cookie}~{value}")
    again = read_request(PREFIX, SERVERS, PersistenceRequest("GET", f"SRV={pair.value}"), 1.0)
    assert again.server is server
    assert again.upstream_cookie == f"SRV={value}"


INSERT_INDIRECT = CookiePolicy(
    "SRV", CookieMode.INSERT, Location("test", 1), indirect=True, nocache=True
)
SEPARATED = st.text(alphabet=st.sampled_from(' \t;,="\\$~|abSRV=s12'), max_size=40)


@FAST
@given(SEPARATED)
def test_an_indirect_insert_cookie_never_reaches_the_server(header: str) -> None:
    decision = read_request(INSERT_INDIRECT, SERVERS, PersistenceRequest("GET", header), 0.0)
    upstream = header if decision.upstream_cookie is KEEP_COOKIE else decision.upstream_cookie
    if upstream is not None:
        assert "SRV" not in [name for name, _ in cookie_pairs(upstream)], upstream
