"""Stick counters, differential: the same configuration and the same sequences of requests
through haproxy 2.6 and through geoproxy (one worker: the fleet's precision is
tests/e2e/test_counters_fleet.py's) give the same statuses and the same counter values, read
with ``sc_*``/``src_*`` fetches and ``table_*`` converters into response headers.

HAProxy configuration manual 4.2 (``stick-table ... store``, ``http-request track-sc*``,
``sc-inc-gpc0``, ``sc-set-gpt0``) and 7.3.3 (the ``sc_*``, ``src_*``, ``table_*`` fetches):
what a tracked request counts and when (a request ``deny`` at once, a failed ``auth`` when
the request ends, a server's 4xx as an error and its 5xx but 501/505 as a failure, a
response-side ``track-sc`` counting the response already there), what a rate limit denies,
and what ``sc_tracked``/``sc_conn_cur``/``table_cnt`` see. Each sequence uses its own key
(``x-client``), and every sequence runs through both proxies before the next one, so the
tables hold the same entries in both at every step.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack
from tests.support.haproxy_process import haproxy_binary, start_haproxy
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ProcessRegistry
from tests.support.raw_client import RawConnection, RawResponse

pytestmark = pytest.mark.e2e
HOST = "127.0.0.1"
CLIENT = "127.0.0.2"  # still loopback
STORE = ("http_req_rate(60s),http_req_cnt,conn_cur,conn_cnt,conn_rate(60s),http_err_cnt,"
         "http_err_rate(60s),http_fail_cnt,gpc0,gpc0_rate(60s),gpc1,gpt0,sess_cnt")
# (conn_cur is compared where it cannot race: haproxy may not have ended the previous
# request's stream when the next connection's request arrives; see the sess test)
VALS = ("rate=%[sc_http_req_rate(0)] cnt=%[sc_http_req_cnt(0)] "
        "conn=%[sc0_conn_cnt] crate=%[sc0_conn_rate] err=%[sc_http_err_cnt(0)] "
        "erate=%[sc0_http_err_rate] fail=%[sc0_http_fail_cnt] gpc0=%[sc0_get_gpc0] "
        "g0r=%[sc0_gpc0_rate] gpc1=%[sc0_get_gpc1] gpt0=%[sc0_get_gpt0] sess=%[sc0_sess_cnt] "
        "trk=%[sc0_tracked] trk1=%[sc1_tracked] other=%[sc1_http_req_cnt] "
        "n=%[table_cnt(other)] look=%[var(txn.look)] in=%[var(txn.in)] clr=%[var(txn.clr)] "
        "src=%[var(txn.src)] srcg=%[var(txn.srcg)] inc=%[var(txn.inc)]")
SESS_STORE = "http_req_cnt,conn_cnt,sess_cnt,conn_cur,http_err_cnt"
SESS = "%[sc0_http_req_cnt]/%[sc0_conn_cnt]/%[sc0_sess_cnt]/%[sc0_conn_cur]/%[sc0_http_err_cnt]"
CT = "%[sc0_http_req_cnt]/%[sc0_http_err_cnt]/%[sc0_conn_cnt]/%[sc1_http_req_cnt]"
AFTER = "cnt=%[sc0_http_req_cnt] err=%[sc0_http_err_cnt] trk=%[sc0_tracked]"
CONFIG = f"""
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s

userlist users
    user bob insecure-password secret

frontend cnt
    bind @BIND@
    stick-table type string len 32 size 1k expire 60s store {STORE}
    http-request track-sc0 req.hdr(x-client)
    http-request track-sc1 req.hdr(x-client) table other if {{ req.hdr(x-second) -m found }}
    http-request track-sc2 src table bysrc if {{ path_beg /src/ }}
    http-request deny deny_status 429 if {{ path_beg /limited/ }} {{ sc_http_req_rate(0) gt 5 }}
    http-request deny if {{ path_beg /deny/ }}
    http-request auth if {{ path_beg /auth/ }} !{{ http_auth(users) }}
    http-request return status 404 if {{ path_beg /ret404/ }}
    http-request redirect location /elsewhere if {{ path_beg /redir/ }}
    http-request sc-inc-gpc0(0) if {{ path_beg /inc/ }}
    http-request sc-inc-gpc1 if {{ path_beg /inc1/ }}
    http-request sc-set-gpt0(0) req.hdr(x-tag) if {{ req.hdr(x-tag) -m found }}
    http-request set-var(txn.look) req.hdr(x-look),table_http_req_cnt(cnt)
    http-request set-var(txn.in) req.hdr(x-look),in_table(cnt)
    http-request set-var(txn.clr) sc0_clr_gpc0 if {{ path_beg /clr/ }}
    http-request set-var(txn.src) src_http_req_cnt(bysrc)
    http-request set-var(txn.srcg) src_get_gpc0(bysrc)
    http-request set-var(txn.inc) src_inc_gpc0(bysrc) if {{ path_beg /src/inc/ }}
    http-response set-header X-Vals "{VALS}"
    http-response track-sc2 res.hdr(x-key) table late
    http-response set-header X-Late "%[sc2_http_req_cnt]/%[sc2_http_err_cnt]/%[sc2_http_fail_cnt]"
    http-after-response set-header X-After "{AFTER}"
    default_backend echo

backend echo
    server s1 @ECHO@

backend other
    stick-table type string len 32 size 1k expire 60s store http_req_cnt,conn_cur

backend bysrc
    stick-table type ip size 1k expire 60s store http_req_cnt,gpc0

backend late
    stick-table type string len 32 size 1k expire 60s store http_req_cnt,http_err_cnt,http_fail_cnt

frontend ct
    bind @CT@
    stick-table type string len 32 size 1k expire 60s store http_req_cnt,http_err_cnt,conn_cnt
    tcp-request content track-sc0 req.hdr(x-client)
    tcp-request content reject if {{ req.hdr(x-client) -m str blocked }}
    http-response set-header X-CT "{CT}"
    default_backend ct_back

backend ct_back
    stick-table type string len 32 size 1k expire 60s store http_req_cnt
    tcp-request content track-sc1 req.hdr(x-client)
    server e1 @ECHO@

frontend sess
    bind @SESS@
    stick-table type ip size 1k expire 60s store {SESS_STORE}
    tcp-request connection track-sc0 src
    http-response set-header X-S "{SESS}"
    default_backend echo

frontend tcp_conn
    mode tcp
    bind @TCPCONN@
    stick-table type ip size 1k expire 60s store conn_cnt,conn_rate(60s),conn_cur,sess_cnt
    tcp-request connection track-sc0 src
    tcp-request connection reject if {{ sc0_conn_cnt gt 3 }}
    default_backend tcp_echo

frontend tcp_sess
    mode tcp
    bind @TCPSESS@
    stick-table type ip size 1k expire 60s store conn_cnt,sess_cnt,gpc0
    tcp-request connection track-sc1 src
    tcp-request content sc-inc-gpc0(1)
    tcp-request content reject if {{ sc1_sess_cnt gt 2 }} {{ sc1_get_gpc0 gt 1 }}
    default_backend tcp_echo

backend tcp_echo
    mode tcp
    server e1 @ECHO@
"""

# sequences: (name, [(path, headers), ...]), each request with the sequence's x-client
SEQUENCES: list[tuple[str, list[tuple[str, dict[str, str]]]]] = [
    ("rate-limit", [("/limited/", {})] * 8),
    ("counts", [("/ok/", {}), ("/ok/", {}), ("/ok/", {"X-Second": "1"})]),
    ("deny-counts-at-once", [("/deny/", {}), ("/ok/", {})]),
    ("auth-counts-at-the-end", [("/auth/", {}), ("/ok/", {}),
                                ("/auth/", {"Authorization": "Basic Ym9iOnNlY3JldA=="})]),
    ("return-and-redirect-count-none", [("/ret404/", {}), ("/redir/", {}), ("/ok/", {})]),
    ("server-errors", [("/ok/", {"X-Respond-Status": "404"}),
                       ("/ok/", {"X-Respond-Status": "500"}),
                       ("/ok/", {"X-Respond-Status": "503"}), ("/ok/", {})]),
    ("gpc", [("/inc/", {}), ("/inc/", {}), ("/inc1/", {}), ("/ok/", {"X-Tag": "42"}),
             ("/clr/", {}), ("/ok/", {})]),
    ("lookups", [("/ok/", {"X-Look": "lookups"}), ("/ok/", {"X-Look": "lookups"}),
                 ("/ok/", {"X-Look": "nobody"})]),
    ("src", [("/src/", {}), ("/src/inc/", {}), ("/src/", {})]),
    ("late-track", [("/ok/", {"X-Respond": "X-Key=late1"}),
                    ("/ok/", {"X-Respond": "X-Key=late1", "X-Respond-Status": "404"}),
                    ("/ok/", {"X-Respond": "X-Key=late1", "X-Respond-Status": "502"})]),
]
COMPARED = ("x-vals", "x-after", "x-late", "location")


class Pair:
    def __init__(self, haproxy: dict[str, int], geoproxy: dict[str, int]) -> None:
        self.ports = {"haproxy": haproxy, "geoproxy": geoproxy}

    def send(self, which: str, path: str, headers: dict[str, str],
             frontend: str = "cnt") -> RawResponse:
        lines = [f"GET {path} HTTP/1.1", "Host: example.com"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        with RawConnection(HOST, self.ports[which][frontend]) as connection:
            connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            return connection.read_response()

    def through_tcp(self, which: str, frontend: str) -> bool:
        """Whether a connection to a TCP frontend gets its request through (else it is
        closed without an answer). It comes from 127.0.0.2, so that the tables' entry is
        this test's alone (the start-up probes came from 127.0.0.1)."""
        received = b""
        try:  # a rejected connection is closed, or reset, without an answer
            with socket.create_connection((HOST, self.ports[which][frontend]), timeout=5,
                                          source_address=(CLIENT, 0)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
                    received += chunk
        except OSError:
            pass
        return received.split(b" ", 2)[1:2] == [b"200"]


@pytest.fixture(scope="module")
def pair(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Pair]:
    haproxy_binary()
    names = ("cnt", "tcp_conn", "tcp_sess", "ct", "sess")
    echo_port, *ports = free_ports(1 + 2 * len(names))
    theirs = dict(zip(names, ports[:len(names)], strict=True))
    ours = dict(zip(names, ports[len(names):], strict=True))
    directory = module_stack.directory
    echo = process_registry.start(
        "echo", [sys.executable, "-m", "tests.support.echo_backend", str(echo_port)],
        directory, session=True)
    haproxy = None
    try:
        wait_for_port(HOST, echo_port, 15.0, echo.is_running)
        config = CONFIG.replace("@ECHO@", f"{HOST}:{echo_port}")

        def bound(ports: dict[str, int]) -> str:
            return config.replace("@BIND@", f"{HOST}:{ports['cnt']}").replace(
                "@TCPCONN@", f"{HOST}:{ports['tcp_conn']}").replace(
                "@TCPSESS@", f"{HOST}:{ports['tcp_sess']}").replace(
                "@CT@", f"{HOST}:{ports['ct']}").replace("@SESS@", f"{HOST}:{ports['sess']}")

        haproxy = start_haproxy(process_registry, bound(theirs), directory / "haproxy",
                                outlive_test=True)
        module_stack.proxy(bound(ours), workers=1)
        yield Pair(theirs, ours)
    finally:
        if haproxy is not None:
            haproxy.stop()
        echo.stop()


def _seen(response: RawResponse) -> tuple[object, ...]:
    return (response.status, *(response.header(name) for name in COMPARED))


@pytest.mark.parametrize(("name", "requests"), SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_haproxy_and_geoproxy_count_alike(pair: Pair, name: str,
                                          requests: list[tuple[str, dict[str, str]]]) -> None:
    seen: dict[str, list[tuple[object, ...]]] = {}
    for which in ("haproxy", "geoproxy"):
        seen[which] = [_seen(pair.send(which, path, {"X-Client": name, **headers}))
                       for path, headers in requests]
    for index, (theirs, ours) in enumerate(zip(seen["haproxy"], seen["geoproxy"],
                                               strict=True)):
        assert ours == theirs, f"request {index + 1} of {name}"
    if name == "rate-limit":  # the rows say what HAProxy does, not only that both agree
        assert [row[0] for row in seen["geoproxy"]] == [200] * 5 + [429] * 3


@pytest.mark.parametrize(("frontend", "expected"), [
    ("tcp_conn", [True] * 3 + [False] * 2),  # the 4th connection counts 4 > 3: rejected
    ("tcp_sess", [True, True, False, False]),  # the 3rd session counts 3 > 2, gpc0 2 > 1
])
def test_tcp_connections_are_counted_and_limited_alike(pair: Pair, frontend: str,
                                                       expected: list[bool]) -> None:
    """``tcp-request connection track-sc*`` in ``mode tcp``: a connection counts in
    ``conn_cnt`` when tracked (rejected ones too), a session in ``sess_cnt`` once the
    connection rules accepted it; ``tcp-request content sc-inc-gpc0`` acts on it."""
    seen = {which: [pair.through_tcp(which, frontend) for _ in expected]
            for which in ("haproxy", "geoproxy")}
    assert seen["haproxy"] == expected  # what HAProxy does, not only that both agree
    assert seen["geoproxy"] == seen["haproxy"]


def test_http_content_rules_track_each_request_in_frontend_and_backend(pair: Pair) -> None:
    """``tcp-request content track-sc*`` in an HTTP proxy runs on every request (the
    frontend's, then the backend's), as ``http-request track-sc*`` would; a content
    ``reject`` closes the connection without an answer."""
    sent = [{}, {"X-Respond-Status": "404"}, {}]
    seen = {which: [pair.send(which, "/", {"X-Client": "ct1", **headers}, "ct").header("x-ct")
                    for headers in sent] for which in ("haproxy", "geoproxy")}
    assert seen["haproxy"] == ["1/0/1/1", "2/1/2/2", "3/1/3/3"]
    assert seen["geoproxy"] == seen["haproxy"]
    for which in ("haproxy", "geoproxy"):
        with pytest.raises((ConnectionError, ValueError, TimeoutError, OSError)):
            pair.send(which, "/", {"X-Client": "blocked"}, "ct")


def test_http_connection_rules_track_the_connection_across_its_requests(pair: Pair) -> None:
    """``tcp-request connection track-sc0 src`` in an HTTP frontend: the entry counts the
    connection once (``conn_cnt``, ``sess_cnt``, ``conn_cur`` while it is open) and each of
    its requests (``http_req_cnt``, errors). From 127.0.0.2: the start-up probes' entry is
    127.0.0.1's."""
    seen = {}
    for which in ("haproxy", "geoproxy"):
        with RawConnection(HOST, pair.ports[which]["sess"], source=CLIENT) as connection:
            rows = []
            for status in ("200", "404", "200"):
                connection.send(f"GET / HTTP/1.1\r\nHost: x\r\nX-Respond-Status: {status}"
                                "\r\n\r\n".encode())
                rows.append(connection.read_response().header("x-s"))
        seen[which] = rows
    assert seen["haproxy"] == ["1/1/1/1/0", "2/1/1/1/1", "3/1/1/1/1"]
    assert seen["geoproxy"] == seen["haproxy"]
