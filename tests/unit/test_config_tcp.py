"""``mode tcp`` as the parser reads it: tcp-request, tcp-check and the protocol checks, the
PROXY protocol keywords, the TCP timeouts, and HAProxy's whole-configuration verdicts on TCP and
HTTP proxies side by side (manual sections 4 and 5; checked against haproxy 2.6 -c)."""

from __future__ import annotations

import pytest

from geoproxy.config import parse_text
from geoproxy.config.model import BalanceAlgorithm, Config, ProxyMode
from geoproxy.config.model_tcp import (
    CheckProtocol,
    ExpectKind,
    ProxyProtocol,
    TcpAction,
    TcpCheckAction,
)
from geoproxy.errors import ConfigError

HEAD = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n" \
       "    timeout server 1s\n"
FRONT = "frontend f\n    bind 127.0.0.1:9000\n    default_backend b\n"


def parse(body: str) -> Config:
    return parse_text(HEAD + body, "t.cfg", env={})


def errors(body: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(body)
    return [str(error) for error in caught.value.errors]


def backend_checks(body: str) -> Config:
    return parse(FRONT + "backend b\n" + body + "    server s 127.0.0.1:6379 check\n")


def test_track_sc_reads_a_table_and_only_the_addresses_at_connection_time() -> None:
    (message,) = errors(FRONT + "    tcp-request connection track-sc0 src\n"
                        "backend b\n    server s 127.0.0.1:1\n")
    assert message == "parsing [t.cfg:9] : Proxy 'f': unable to find table 'f' referenced " \
                      "by track-sc0."
    (message,) = errors(FRONT + "    tcp-request connection track-sc0 req.len\n"
                        "backend b\n    server s 127.0.0.1:1\n")
    assert "fetch method 'req.len' extracts information from the request contents" in message
    config = parse(FRONT + "    stick-table type ip size 1k store conn_cnt\n"
                   "    tcp-request connection track-sc1 src\n"
                   "    tcp-request connection reject if { sc1_conn_cnt gt 3 }\n"
                   "    tcp-request content sc-inc-gpc0(1)\nbackend b\n    server s 127.0.0.1:1\n")
    rules = config.frontends[0].tcp_request
    assert rules is not None
    assert [rule.action for rule in rules.connection] == [TcpAction.COUNTER, TcpAction.REJECT]
    assert rules.content[0].counter is not None


def test_tcp_request_rules_keep_their_order_delay_and_conditions() -> None:
    config = parse("frontend f\n    bind :9000\n    tcp-request inspect-delay 5s\n"
                   "    tcp-request connection reject unless { src 10.0.0.0/8 }\n"
                   "    tcp-request content accept if { req.ssl_hello_type 1 }\n"
                   "    tcp-request content silent-drop\n    default_backend b\n"
                   "backend b\n    server s 127.0.0.1:1\n")
    rules = config.frontends[0].tcp_request
    assert rules is not None and rules.inspect_delay == 5.0
    assert [r.action for r in rules.connection] == [TcpAction.REJECT]
    assert [r.action for r in rules.content] == [TcpAction.ACCEPT, TcpAction.SILENT_DROP]
    assert rules.connection[0].condition is not None and rules.connection[0].condition.unless


def test_a_tcp_check_ruleset_reads_as_steps() -> None:
    check = backend_checks(
        "    option tcp-check\n    tcp-check comment first\n    tcp-check connect port 6380\n"
        "    tcp-check send PING\\r\\n\n    tcp-check send-binary 0d0a\n"
        "    tcp-check expect ! string -ERR\n"
        "    tcp-check expect min-recv 3 error-status L7STS rbinary ^2B\n"
    ).backends[0].tcp_check
    assert check is not None and check.protocol is CheckProtocol.TCP_CHECK
    actions = [step.action for step in check.steps]
    assert actions == [TcpCheckAction.COMMENT, TcpCheckAction.CONNECT, TcpCheckAction.SEND,
                       TcpCheckAction.SEND, TcpCheckAction.EXPECT, TcpCheckAction.EXPECT]
    assert check.steps[1].port == 6380
    assert (check.steps[2].data, check.steps[3].data) == (b"PING\r\n", b"\r\n")
    negated, binary = check.steps[4], check.steps[5]
    assert (negated.kind, negated.pattern, negated.negated) == (ExpectKind.STRING, "-ERR", True)
    assert (binary.kind, binary.min_recv, binary.error_status) == (ExpectKind.RBINARY, 3, "L7STS")


def test_the_protocol_checks_send_the_bytes_haproxy_sends() -> None:
    mysql = backend_checks("    option mysql-check user haproxy\n").backends[0].tcp_check
    assert mysql is not None
    login = mysql.steps[1].data
    assert login[:4] == bytes([41, 0, 0, 1])  # 7 + 27 + len("haproxy"), sequence 1
    assert login[4:13] == bytes.fromhex("008200000080000121")
    assert login[13:36] == bytes(23)
    assert login[36:] == b"haproxy\x00\x00" + bytes.fromhex("0100000001")  # then COM_QUIT
    pgsql = backend_checks("    option pgsql-check user haproxy\n").backends[0].tcp_check
    assert pgsql is not None
    assert pgsql.steps[1].data == bytes.fromhex("0000001600030000") + b"user\x00haproxy\x00\x00"
    redis = backend_checks("    option redis-check\n").backends[0].tcp_check
    assert redis is not None and redis.steps[0].data == b"*1\r\n$4\r\nPING\r\n"
    smtp = backend_checks("    option smtpchk EHLO mail.test\n").backends[0].tcp_check
    assert smtp is not None and smtp.steps[3].data == b"EHLO mail.test\r\n"


def test_the_last_check_option_wins() -> None:
    config = backend_checks("    option redis-check\n    option httpchk GET /\n")
    assert config.backends[0].httpchk is not None and config.backends[0].tcp_check is None
    config = backend_checks("    option httpchk GET /\n    option ldap-check\n")
    assert config.backends[0].httpchk is None
    assert config.backends[0].tcp_check is not None


def test_tcp_check_rules_without_the_option_are_ignored_with_haproxys_warning() -> None:
    config = backend_checks("    tcp-check send PING\\r\\n\n")
    assert config.backends[0].tcp_check is None
    assert any("uses tcp-check rules without 'option tcp-check'" in str(w)
               for w in config.warnings)


def test_the_proxy_protocol_keywords() -> None:
    config = parse("frontend f\n    bind 127.0.0.1:9000 accept-proxy\n    default_backend b\n"
                   "backend b\n    server a 127.0.0.1:1 send-proxy\n"
                   "    server b 127.0.0.1:2 send-proxy-v2 check-send-proxy\n")
    assert config.frontends[0].binds[0].accept_proxy
    a, b = config.backends[0].servers
    assert (a.send_proxy, a.check_send_proxy) == (ProxyProtocol.V1, False)
    assert (b.send_proxy, b.check_send_proxy) == (ProxyProtocol.V2, True)


def test_fin_timeouts_belong_to_their_side() -> None:
    config = parse("    timeout client-fin 3s\n    timeout server-fin 4s\n" + FRONT
                   + "backend b\n    server s 127.0.0.1:1\n")
    assert config.frontends[0].timeouts.client_fin == 3.0
    assert config.backends[0].timeouts.server_fin == 4.0


def test_an_http_frontend_cannot_use_a_tcp_backend_as_in_haproxy() -> None:
    (message,) = errors("frontend f\n    mode http\n    bind :9000\n    default_backend b\n"
                        "backend b\n    server s 127.0.0.1:1\n")
    assert "http frontend 'f' (t.cfg:6) tries to use incompatible tcp backend 'b'" in message


def test_http_only_settings_in_a_tcp_proxy_fall_back_with_haproxys_warnings() -> None:
    config = parse("frontend f\n    bind :9000\n    option httplog\n    option forwardfor\n"
                   "    default_backend b\n"
                   "backend b\n    balance uri\n    cookie SRV insert\n    server s 127.0.0.1:1\n")
    frontend, backend = config.frontends[0], config.backends[0]
    assert (frontend.mode, frontend.tcplog, frontend.httplog) == (ProxyMode.TCP, True, False)
    assert backend.balance.algorithm is BalanceAlgorithm.ROUNDROBIN and backend.cookie is None
    shown = "\n".join(str(w) for w in config.warnings)
    assert "'option httplog' not usable with frontend 'f' (needs 'mode http'). Falling back " \
           "to 'option tcplog'." in shown
    assert "'option forwardfor' ignored for frontend 'f' as it requires HTTP mode." in shown
    assert "Layer 7 hash not possible for backend 'b' (needs 'mode http')." in shown
    assert "cookie will be ignored for backend 'b' (needs 'mode http')." in shown


def test_balance_hash_takes_one_fetch_geoproxy_evaluates() -> None:
    config = parse(FRONT + "backend b\n    balance hash req.ssl_sni\n    server s 127.0.0.1:1\n")
    assert config.backends[0].balance.expression == "req.ssl_sni"
    (message,) = errors(FRONT + "backend b\n    balance hash req.cook(x),lower\n"
                        "    server s 127.0.0.1:1\n")
    assert "balance hash : converters are not supported by geoproxy" in message


def test_send_proxy_on_an_http_backend_is_taken_as_haproxy_takes_it() -> None:
    config = parse("frontend f\n    mode http\n    bind :9000\n    default_backend b\n"
                   "backend b\n    mode http\n    server s 127.0.0.1:1 send-proxy-v2 ssl "
                   "verify none check check-send-proxy\n")
    (server,) = config.backends[0].servers
    assert (server.send_proxy, server.check_send_proxy) == (ProxyProtocol.V2, True)
