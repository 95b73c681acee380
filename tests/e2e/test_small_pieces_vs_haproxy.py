"""monitor-uri, compression, unique-id-header, port-less servers, stats in a backend, an empty
errorfile, http-errors sections with errorfiles, and option http-buffer-request, each through
haproxy 2.6 and through geoproxy with the same configuration and the same requests: the
status, the headers the client gets (all but Date), the body (decompressed) and the request
headers the server sees must agree.

HAProxy manual: ``monitor-uri``, ``monitor fail``, ``compression``, ``unique-id-format``,
``unique-id-header``, ``option originalto``, ``server`` (an address without a port, or ``*``),
``stats`` (in a backend),
``errorfile``, ``http-errors``, ``errorfiles``, ``option http-buffer-request``.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.support.haproxy_process import start_haproxy
from tests.support.ports import free_ports
from tests.support.processes import ProcessRegistry
from tests.support.shaped_server import ShapedServer, shaped_body, start_shaped

CONFIG = r"""
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend f
    bind 127.0.0.1:{port}
    monitor-uri /mon
    acl fail_it hdr(x-fail) -i yes
    monitor fail if fail_it
    unique-id-format %{{+X}}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Unique-ID
    option forwardfor
    option originalto
    errorfiles site 403
    http-request deny if {{ path_beg /denied }}
    use_backend sectioned if {{ path_beg /sectioned }}
    use_backend overridden if {{ path_beg /overridden }}
    use_backend reimported if {{ path_beg /reimported }}
    use_backend portless if {{ path_beg /portless }}
    use_backend dst if {{ path_beg /dst }}
    use_backend st if {{ path_beg /st }}
    use_backend empty if {{ path_beg /empty }}
    default_backend app
backend app
    option http-buffer-request
    compression algo gzip deflate
    compression type text/html text/plain
    server s1 {app}
backend portless
    server p1 127.0.0.2
backend dst
    server d1 *:{app_port}
backend st
    stats enable
    stats uri /st
backend empty
    errorfile 503 {empty}
    server e1 127.0.0.1:1 disabled
backend sectioned
    errorfiles site
    server x1 127.0.0.1:1 disabled
backend overridden
    errorfiles site
    errorfile 503 {own503}
    server x2 127.0.0.1:1 disabled
backend reimported
    errorfile 503 {own503}
    errorfiles site 503
    server x3 127.0.0.1:1 disabled
http-errors site
    errorfile 503 {site503}
    errorfile 403 {site403}
"""

PAGES = {
    "site503": b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
               b"Cache-Control: no-cache\r\n\r\nfrom the http-errors section\n",
    "site403": b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
               b"\r\nsection: 403\n",
    "own503": b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\n"
              b"the backend's own errorfile\n",
}



@dataclass
class Pair:
    haproxy: int  # the port each proxy listens on
    geoproxy: int
    app: ShapedServer

    @property
    def ports(self) -> tuple[int, int]:
        return (self.haproxy, self.geoproxy)


@pytest.fixture(scope="module")
def pair(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Pair]:
    haproxy_port, geoproxy_port = free_ports(2)
    app = start_shaped()
    mapped = [start_shaped("127.0.0.2", port) for port in (haproxy_port, geoproxy_port)]
    empty = module_stack.directory / "empty.http"
    empty.write_bytes(b"")
    pages = {}
    for name, content in PAGES.items():
        pages[name] = module_stack.directory / f"{name}.http"
        pages[name].write_bytes(content)
    started = []
    try:
        for port in (haproxy_port, geoproxy_port):
            text = CONFIG.format(port=port, app=app.address, app_port=app.port, empty=empty,
                                 **pages)
            if port == haproxy_port:
                started.append(start_haproxy(process_registry, text,
                                             module_stack.directory / "haproxy",
                                             outlive_test=True))
            else:
                module_stack.proxy(text, workers=1)
        yield Pair(haproxy_port, geoproxy_port, app)
    finally:
        for process in started:
            process.stop()
        for server in (app, *mapped):
            server.stop()


_NOT_COMPARED = frozenset({"date", "transfer-encoding", "connection"})


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name), None)

    def comparable(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers (lower-case names, sorted) and the decoded body. Date differs, and
        the framing of a body that ends at the close (HAProxy 2.6 keeps it so, geoproxy
        chunks it for an HTTP/1.1 client) is the HTTP/1.1 layer's, not these features'."""
        headers = sorted((n.lower(), v) for n, v in self.headers
                         if n.lower() not in _NOT_COMPARED)
        if self.header("content-encoding"):
            headers.append(("(framing)", self.header("transfer-encoding") or ""))
        encoding = self.header("content-encoding")
        body = self.body
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        return self.status, headers, body


def ask(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        http10: bool = False) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    if http10:
        connection._http_vsn = 10  # type: ignore[attr-defined]
        connection._http_vsn_str = "HTTP/1.0"  # type: ignore[attr-defined]
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def both(pair: Pair, path: str, **options: object) -> tuple[Reply, Reply]:
    return (ask(pair.haproxy, path, **options),  # type: ignore[arg-type]
            ask(pair.geoproxy, path, **options))  # type: ignore[arg-type]


# -- monitor-uri ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"x-fail": "yes"}], ids=["ready", "monitor-fail"])
def test_the_monitor_uri_is_answered_by_the_proxy_as_haproxy_answers_it(
    pair: Pair, headers: dict[str, str]
) -> None:
    theirs, ours = both(pair, "/mon", headers=headers)
    assert ours.status == (503 if headers else 200)
    assert ours.comparable() == theirs.comparable()
    assert not pair.app.seen or all(seen.target != "/mon" for seen in pair.app.seen)


def test_a_monitor_uri_with_a_query_string_is_an_ordinary_request(pair: Pair) -> None:
    theirs, ours = both(pair, "/mon?x=1")
    assert ours.header("server") is not None  # the application answered
    assert ours.comparable() == theirs.comparable()


def test_head_on_the_monitor_uri_gets_the_head_alone(pair: Pair) -> None:
    theirs, ours = both(pair, "/mon", method="HEAD")
    assert ours.body == b""
    assert ours.comparable() == theirs.comparable()


# -- compression ------------------------------------------------------------------------------

COMPRESSION_CASES = [
    ("ct=text/html", "gzip", "GET", False),
    ("ct=text/html", "deflate", "GET", False),
    ("ct=text/html", "deflate, gzip;q=0.5", "GET", False),
    ("ct=text/html", "gzip;q=0", "GET", False),
    ("ct=text/html", "*", "GET", False),
    ("ct=text/html", "br", "GET", False),
    ("ct=text/html", "", "GET", False),
    ("ct=text/plain;charset=utf-8", "gzip", "GET", False),
    ("ct=TEXT/HTML", "gzip", "GET", False),
    ("ct=text/css", "gzip", "GET", False),
    ("ct=multipart/mixed", "gzip", "GET", False),
    ("ct=text/html&chunked=1", "gzip", "GET", False),
    ("ct=text/html&close=1", "gzip", "GET", False),
    ("ct=text/html&size=0", "gzip", "GET", False),
    ("ct=text/html&size=0&chunked=1", "gzip", "GET", False),
    ("ct=text/html&ce=br", "gzip", "GET", False),
    ("ct=text/html&cc=public,no-transform", "gzip", "GET", False),
    ("ct=text/html&etag=%22abc%22", "gzip", "GET", False),
    ("ct=text/html&etag=W/%22abc%22", "gzip", "GET", False),
    ("ct=text/html&etag=abc", "gzip", "GET", False),
    ("ct=text/html&vary=Origin", "gzip", "GET", False),
    ("ct=text/html&status=201", "gzip", "GET", False),
    ("ct=text/html&status=206", "gzip", "GET", False),
    ("ct=text/html&status=404", "gzip", "GET", False),
    ("ct=text/html", "gzip", "HEAD", False),
    ("ct=text/html", "gzip", "GET", True),
    ("ct=text/html&http10=1", "gzip", "GET", False),
    ("ct=text/html&size=200000", "gzip", "GET", False),
]


@pytest.mark.parametrize(("query", "accept", "method", "http10"), COMPRESSION_CASES,
                         ids=[f"{q}|{a}|{m}{'|1.0' if v else ''}"
                              for q, a, m, v in COMPRESSION_CASES])
def test_compression_applies_to_the_responses_haproxy_compresses_with_its_headers(
    pair: Pair, query: str, accept: str, method: str, http10: bool
) -> None:
    headers = {"Accept-Encoding": accept} if accept else {}
    theirs, ours = both(pair, f"/page?{query}", headers=headers, method=method, http10=http10)
    assert ours.comparable() == theirs.comparable()


def test_a_compressed_body_is_the_servers_body_and_streams_chunked(pair: Pair) -> None:
    ours = ask(pair.geoproxy, "/page?ct=text/html&size=200000", {"Accept-Encoding": "gzip"})
    assert ours.header("content-encoding") == "gzip"
    assert ours.header("transfer-encoding") == "chunked"
    assert ours.header("content-length") is None
    assert gzip.decompress(ours.body) == shaped_body(200000)


# -- unique-id-header -------------------------------------------------------------------------

_UNIQUE_ID = re.compile(r"([0-9A-F]{8}):([0-9A-F]{4})_([0-9A-F]{8}):([0-9A-F]{4})_"
                        r"([0-9A-F]{8})_([0-9A-F]{4,}):([0-9A-F]{4,})")


def test_unique_id_x_forwarded_for_and_x_original_to_reach_the_server_as_haproxy_sends_them(
    pair: Pair,
) -> None:
    seen = []
    for port in pair.ports:
        reply = ask(port, "/echo")
        fields = json.loads(reply.body)["headers"]
        names = [name.lower() for name, _ in fields]
        value = dict((n.lower(), v) for n, v in fields)["x-unique-id"]
        match = _UNIQUE_ID.fullmatch(value)
        assert match is not None, value
        client, _, frontend, frontend_port, accepted, _, _ = match.groups()
        assert (client, frontend) == ("7F000001", "7F000001")
        assert int(frontend_port, 16) == port
        assert abs(int(accepted, 16) - time.time()) < 60
        assert dict((n.lower(), v) for n, v in fields)["x-original-to"] == "127.0.0.1"
        seen.append(names)
    assert seen[1] == seen[0]


# -- a server without a port ------------------------------------------------------------------


def test_a_server_without_a_port_is_reached_on_the_port_the_client_connected_to(
    pair: Pair,
) -> None:
    for port in pair.ports:
        reply = ask(port, "/portless/echo")
        assert reply.status == 200, (port, reply)
        answer = json.loads(reply.body)
        assert (answer["host"], answer["port"]) == ("127.0.0.2", port)


def test_a_server_at_the_wildcard_address_is_reached_at_the_address_the_client_connected_to(
    pair: Pair,
) -> None:
    for port in pair.ports:
        answer = json.loads(ask(port, "/dst/echo").body)
        assert (answer["host"], answer["port"]) == ("127.0.0.1", pair.app.port)


# -- stats in a backend -----------------------------------------------------------------------


def test_a_backend_with_stats_keywords_serves_the_stats_page(pair: Pair) -> None:
    theirs, ours = both(pair, "/st")
    assert (ours.status, theirs.status) == (200, 200)
    assert ours.header("content-type", ) == theirs.header("content-type") == "text/html"
    assert b"app" in ours.body


# -- an empty errorfile -----------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_an_empty_errorfile_closes_the_connection_without_a_byte(pair: Pair) -> None:
    request = b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw_exchange(pair.haproxy, request) == b""
    assert raw_exchange(pair.geoproxy, request) == b""


# -- http-errors sections and errorfiles -------------------------------------------------------


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/sectioned", 503, b"from the http-errors section\n"),
    ("/overridden", 503, b"the backend's own errorfile\n"),
    ("/reimported", 503, b"from the http-errors section\n"),
    ("/denied", 403, b"section: 403\n"),
], ids=["imported-page", "later-errorfile-wins", "later-errorfiles-wins",
         "frontend-imports-one-code"])
def test_errorfiles_serve_the_pages_of_an_http_errors_section_as_haproxy_does(
    pair: Pair, path: str, status: int, body: bytes
) -> None:
    theirs, ours = both(pair, path)
    assert (ours.status, ours.body) == (status, body)
    assert ours.comparable() == theirs.comparable()


# -- option http-buffer-request ----------------------------------------------------------------


def _forwarded_before_the_end(port: int, app: ShapedServer, tag: str, total: int,
                              first: int) -> tuple[bool, bytes]:
    """Send a POST of ``total`` bytes, ``first`` of them now and the rest 0.4 s later; whether
    the server saw the request before the rest was sent, and the answer."""
    head = (f"POST /echo?{tag} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + b"a" * first)
        time.sleep(0.4)
        early = any(seen.target.endswith(tag) for seen in app.seen)
        sock.sendall(b"a" * (total - first))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return early, received


@pytest.mark.parametrize(("total", "first", "early"), [(10, 5, False), (300000, 150000, True)],
                         ids=["small-body-waits", "body-larger-than-the-buffer-streams"])
def test_http_buffer_request_waits_for_the_body_as_haproxy_does(
    pair: Pair, total: int, first: int, early: bool
) -> None:
    for name, port in zip(("haproxy", "geoproxy"), pair.ports, strict=True):
        seen_early, answer = _forwarded_before_the_end(port, pair.app, f"{name}-{total}", total,
                                                       first)
        assert seen_early is early, name
        assert answer.startswith(b"HTTP/1.1 200"), (name, answer[:200])
        assert b'"body": %d' % total in answer, name


def test_the_differential_configuration_is_valid_for_both(pair: Pair, tmp_path: Path) -> None:
    assert pair.haproxy != pair.geoproxy
