"""Stick counters through the rules, in one process and without Redis: ``stick-table ...
store`` in frontends and backends, ``track-sc*``, ``sc-inc-gpc*``/``sc-set-gpt*``, the
``sc_*``/``src_*``/``table_*`` fetches and the ``in_table``/``table_*`` converters, compiled
as a worker compiles them (HAProxy 2.6's meaning; the same cases run against haproxy itself
in tests/e2e/test_counters_differential.py), and the configuration check of table names.
"""

from __future__ import annotations

import pytest

from geoproxy.config import ConfigError, parse_text
from geoproxy.counters.registry import CounterTables
from geoproxy.rules.engine import RuleSet, compile_rules, run_rules
from geoproxy.rules.fetches import CompileEnv
from geoproxy.rules.outcome import LocalReply
from geoproxy.rules.txn import Txn

HEAD = (
    "defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n"
    "    timeout connect 5s\n"
    "backend b\n    server s1 127.0.0.1:9001\n    server s2 127.0.0.1:9002\n"
)
STORE = ("http_req_rate(10s),http_req_cnt,conn_cur,conn_cnt,conn_rate(10s),http_err_cnt,"
         "gpc0,gpc0_rate(10s),gpt0,bytes_out_cnt")


class Proxy:
    """A frontend's compiled rules and the worker's counters, run on requests in order."""

    def __init__(self, lines: str, backends: str = "") -> None:
        text = HEAD + backends + "frontend f\n    bind :80\n    default_backend b\n" + lines
        self.config = parse_text(text, "t.cfg", env={})
        self.counters = CounterTables.of(self.config, wall=lambda: 1_700_000_000.0)
        rules = compile_rules(self.config.frontends[0].rules, "f",
                              CompileEnv(counters=self.counters))
        assert rules is not None
        self.rules: RuleSet = rules

    def request(self, path: str = "/", client: str = "10.0.0.1", **headers: str) -> Txn:
        txn, _ = self.answer(path, client, **headers)
        return txn

    def answer(self, path: str = "/", client: str = "10.0.0.1",
               **headers: str) -> tuple[Txn, LocalReply | None]:
        environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "REMOTE_ADDR": client,
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1"}
        environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
        txn = Txn(environ, "f")
        return txn, run_rules(self.rules.request, txn)

    def end(self, txn: Txn) -> None:
        for tracked in txn.stick or ():
            if tracked is not None:
                tracked[0].untrack(tracked[1], 0, 0)
        txn.stick = None


def _header(txn: Txn, name: str) -> str | None:
    value: str | None = txn.environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value


def test_a_rate_limit_denies_past_its_threshold_and_denied_requests_still_count() -> None:
    proxy = Proxy(f"    stick-table type ip size 1k expire 30s store {STORE}\n"
                  "    http-request track-sc0 src\n"
                  "    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 3 }\n"
                  "    http-request set-header X-Rate %[sc_http_req_rate(0)]\n")
    statuses: list[object] = []
    for _ in range(5):
        txn, reply = proxy.answer()
        statuses.append(reply.status if reply else _header(txn, "x-rate"))
        proxy.end(txn)
    assert statuses == ["1", "2", "3", 429, 429]
    assert proxy.answer(client="10.0.0.2")[1] is None


def test_fetches_read_the_tracked_entry_and_actions_change_it() -> None:
    proxy = Proxy(f"    stick-table type string len 8 size 1k expire 30s store {STORE}\n"
                  "    http-request track-sc1 req.hdr(x-user)\n"
                  "    http-request sc-inc-gpc0(1) if { path_beg /inc }\n"
                  "    http-request sc-set-gpt0(1) req.hdr(x-tag) if { req.hdr(x-tag) -m found }\n"
                  "    http-request set-header X-Vals "
                  "%[sc1_http_req_cnt]/%[sc_get_gpc0(1)]/%[sc1_get_gpt0]/%[sc1_conn_cur]"
                  "/%[sc1_gpc0_rate]/%[sc1_tracked]/%[sc0_tracked]/%[sc0_http_req_cnt]"
                  "/%[sc1_sess_cnt]/%[table_cnt]\n")
    first = proxy.request("/inc", **{"x-user": "alicebob"})
    assert _header(first, "x-vals") == "1/1/0/1/1/1/0///1"
    second = proxy.request("/inc", **{"x-user": "alicebob", "x-tag": "7"})
    assert _header(second, "x-vals") == "2/2/7/2/2/1/0///1"
    proxy.end(first)
    proxy.end(second)
    third = proxy.request("/", **{"x-user": "alicebobby"})  # cut to len 8: same entry
    assert _header(third, "x-vals") == "3/2/7/1/2/1/0///1"
    assert _header(proxy.request("/", **{"x-user": "bob"}), "x-vals") == "1/0/0/1/0/1/0///2"


def test_src_fetches_and_table_converters_look_a_key_up_without_creating_it() -> None:
    proxy = Proxy("    http-request track-sc0 src table st\n"
                  "    http-request sc-inc-gpc0(0) if { path_beg /inc }\n"
                  "    http-request set-header X-Src %[src_http_req_cnt(st)]/%[src_get_gpc0(st)]"
                  "/%[req.hdr(x-ip),table_http_req_cnt(st)]/%[req.hdr(x-ip),in_table(st)]"
                  "/%[req.hdr(x-ip),table_gpc0(st)]/%[req.hdr(x-ip),table_sess_cnt(st)]\n",
                  backends=f"backend st\n    stick-table type ip size 1k store {STORE}\n")
    proxy.request("/inc", client="10.0.0.9")
    txn = proxy.request("/", client="10.0.0.9", **{"x-ip": "10.0.0.9"})
    assert _header(txn, "x-src") == "2/1/2/1/1/"  # sess_cnt is not stored: no sample
    other = proxy.request("/", client="10.0.0.8", **{"x-ip": "10.0.0.7"})
    assert _header(other, "x-src") == "1/0/0/0/0/0"
    assert proxy.counters.tables["st"].used() == 2  # the lookup of 10.0.0.7 created nothing


def test_a_track_whose_key_does_not_convert_tracks_nothing_and_the_first_track_wins() -> None:
    proxy = Proxy("    stick-table type ip size 1k store http_req_cnt\n"
                  "    http-request track-sc0 req.hdr(x-ip)\n"
                  "    http-request track-sc0 src\n"
                  "    http-request set-header X-N %[sc0_http_req_cnt]\n")
    assert _header(proxy.request(**{"x-ip": "not-an-address"}), "x-n") == "1"  # src tracked
    assert _header(proxy.request(**{"x-ip": "10.9.9.9"}), "x-n") == "1"  # x-ip, src skipped
    assert proxy.counters.tables["f"].used() == 2


@pytest.mark.parametrize(("lines", "where", "message"), [
    ("    stick-table type ip size 1k store foo\n",
     "t.cfg:12", "stick-table: unknown store option 'foo'."),
    ("    http-request track-sc0 src table nope\n",
     "t.cfg:12", "Proxy 'f': unable to find table 'nope' referenced by track-sc0."),
    ("    http-request set-header X %[sc_http_req_rate(0,nope)]\n",
     "t.cfg:12", "unable to find table 'nope' referenced in arg 2 of sample fetch keyword "
     "'sc_http_req_rate' in proxy 'f'."),
])
def test_table_references_are_checked_at_load_time(lines: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Proxy(lines)
    (error,) = caught.value.errors
    assert (str(error.location), error.message) == (where, message)


def test_a_frontend_and_a_backend_of_one_name_may_not_both_have_a_table() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text(HEAD.replace("backend b\n", "backend f\n    stick-table type ip size 1\n")
                   + "frontend f\n    bind :80\n    default_backend f\n"
                   "    stick-table type ip size 1\n", "t.cfg", env={})
    (error,) = caught.value.errors
    assert error.message.startswith("stick-table name 'f' conflicts with table declared in "
                                    "frontend 'f' at t.cfg:")


def test_a_listen_sections_rules_use_its_own_table() -> None:
    config = parse_text(HEAD + "listen l\n    bind :81\n    stick-table type ip size 1k "
                        "store http_req_cnt\n    http-request track-sc0 src\n"
                        "    server s 127.0.0.1:9003\n", "t.cfg", env={})
    assert set(CounterTables.of(config).tables) == {"l"}
