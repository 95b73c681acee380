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
STORE = ("http_req_rate(60s),http_req_cnt,conn_cur,conn_cnt,conn_rate(60s),http_err_cnt,"
         "http_err_rate(60s),http_fail_cnt,gpc0,gpc0_rate(60s),gpc1,gpt0,sess_cnt")
VALS = ("rate=%[sc_http_req_rate(0)] cnt=%[sc_http_req_cnt(0)] cur=%[sc_conn_cur(0)] "
        "conn=%[sc0_conn_cnt] crate=%[sc0_conn_rate] err=%[sc_http_err_cnt(0)] "
        "erate=%[sc0_http_err_rate] fail=%[sc0_http_fail_cnt] gpc0=%[sc0_get_gpc0] "
        "g0r=%[sc0_gpc0_rate] gpc1=%[sc0_get_gpc1] gpt0=%[sc0_get_gpt0] sess=%[sc0_sess_cnt] "
        "trk=%[sc0_tracked] trk1=%[sc1_tracked] other=%[sc1_http_req_cnt] "
        "n=%[table_cnt(other)] look=%[var(txn.look)] in=%[var(txn.in)] clr=%[var(txn.clr)] "
        "src=%[var(txn.src)] srcg=%[var(txn.srcg)] inc=%[var(txn.inc)]")
AFTER = "cnt=%[sc0_http_req_cnt] err=%[sc0_http_err_cnt] cur=%[sc0_conn_cur] trk=%[sc0_tracked]"
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
    def __init__(self, haproxy: int, geoproxy: int) -> None:
        self.ports = {"haproxy": haproxy, "geoproxy": geoproxy}

    def send(self, which: str, path: str, headers: dict[str, str]) -> RawResponse:
        lines = [f"GET {path} HTTP/1.1", "Host: example.com"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        with RawConnection(HOST, self.ports[which]) as connection:
            connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            return connection.read_response()


@pytest.fixture(scope="module")
def pair(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Pair]:
    haproxy_binary()
    echo_port, haproxy_port, geoproxy_port = free_ports(3)
    directory = module_stack.directory
    echo = process_registry.start(
        "echo", [sys.executable, "-m", "tests.support.echo_backend", str(echo_port)],
        directory, session=True)
    haproxy = None
    try:
        wait_for_port(HOST, echo_port, 15.0, echo.is_running)
        config = CONFIG.replace("@ECHO@", f"{HOST}:{echo_port}")
        haproxy = start_haproxy(process_registry, config.replace(
            "@BIND@", f"{HOST}:{haproxy_port}"), directory / "haproxy", outlive_test=True)
        module_stack.proxy(config.replace("@BIND@", f"{HOST}:{geoproxy_port}"), workers=1)
        yield Pair(haproxy_port, geoproxy_port)
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
