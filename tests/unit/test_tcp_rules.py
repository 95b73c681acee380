"""``tcp-request`` rules and ACLs over a TCP connection's bytes (geoproxy.tcp.rules,
conditions, facts): HAProxy's three answers (holds, does not, cannot tell yet), read back from
configurations as an operator writes them."""

from __future__ import annotations

import functools
import ssl

import pytest

from geoproxy.config import parse_text
from geoproxy.config.model import Frontend
from geoproxy.tcp.conditions import compile_condition
from geoproxy.tcp.facts import TcpFacts
from geoproxy.tcp.rules import Verdict, compile_rules, evaluate

HEAD = ("defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\nbackend b\n    server s 127.0.0.1:9001\n"
        "backend sni\n    server s 127.0.0.1:9002\n"
        "frontend f\n    bind :8443\n    default_backend b\n")


def frontend(body: str) -> Frontend:
    return parse_text(HEAD + body, "t.cfg", env={}).frontends[0]


@functools.cache
def hello(name: str, alpn: tuple[str, ...] = ()) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def alpn_hello(alpn: tuple[str, ...]) -> bytes:
    return hello("x.test", alpn)


def facts(payload: bytes = b"", *, final: bool = False, src: str = "192.0.2.7",
          port: int = 8443) -> TcpFacts:
    return TcpFacts((src, 40000), ("127.0.0.1", port), payload, final)


def verdict(body: str, state: TcpFacts) -> Verdict:
    rules = frontend(body).tcp_request
    assert rules is not None
    return evaluate(compile_rules(rules.content), state)


SNI_RULES = ("    tcp-request inspect-delay 5s\n"
             "    tcp-request content accept if { req_ssl_hello_type 1 }\n")


def test_a_partial_hello_waits_and_a_whole_one_is_accepted() -> None:
    data = hello("one.example.com")
    assert verdict(SNI_RULES, facts(data[:40])) is Verdict.WAIT
    assert verdict(SNI_RULES, facts(data)) is Verdict.ACCEPT


def test_when_the_delay_is_over_an_undecided_rule_does_not_hold() -> None:
    body = SNI_RULES + "    tcp-request content reject\n"
    assert verdict(body, facts(b"\x16\x03\x01", final=True)) is Verdict.REJECT


def test_a_rule_that_cannot_decide_stops_the_rules_after_it() -> None:
    body = "    tcp-request content accept if WAIT_END\n    tcp-request content reject\n"
    assert verdict(body, facts(b"anything")) is Verdict.WAIT
    assert verdict(body, facts(b"anything", final=True)) is Verdict.ACCEPT


def test_no_rule_holding_accepts() -> None:
    assert verdict("    tcp-request content reject if { req.len gt 10 }\n",
                   facts(b"short", final=True)) is Verdict.ACCEPT


@pytest.mark.parametrize(("rule", "payload", "expected"), [
    ("{ req.len gt 3 }", b"abcd", Verdict.REJECT),
    ("{ req.len 1:3 }", b"abcd", Verdict.ACCEPT),
    ("{ req.payload(0,3) -m bin 160301 }", b"\x16\x03\x01\x00", Verdict.REJECT),
    ("{ req.payload(0,3) -m bin 160301 }", b"\x16\x03", Verdict.WAIT),
    ("{ req.payload(0,11) -m found }", b"x" * 11, Verdict.REJECT),
    ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Verdict.REJECT),
    ("HTTP", b"GET / HTTP/1.1\r\nHost", Verdict.WAIT),
    ("HTTP", b"\x16\x03\x01", Verdict.ACCEPT),
    ("{ path_beg /admin }", b"GET /admin/x HTTP/1.1\r\n\r\n", Verdict.REJECT),
    ("{ hdr(host) -i EXAMPLE.com }", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
     Verdict.REJECT),
    ("!{ src 192.0.2.0/24 }", b"x", Verdict.ACCEPT),
    ("{ src 192.0.2.0/24 } { dst_port 8443 }", b"x", Verdict.REJECT),
    ("{ dst_port 80 } || { req.len ge 1 }", b"x", Verdict.REJECT),
])
def test_fetches_decide_on_the_bytes_received(rule: str, payload: bytes,
                                              expected: Verdict) -> None:
    body = f"    tcp-request inspect-delay 1s\n    tcp-request content reject if {rule}\n"
    assert verdict(body, facts(payload)) is expected


@pytest.mark.parametrize(("test", "name", "holds"), [
    ("req.ssl_sni -i ONE.example.com", "one.example.com", True),
    ("req_ssl_sni -m end .example.com", "a.example.com", True),
    ("req.ssl_sni -m beg api.", "web.example.com", False),
    ("req.ssl_sni -m reg -i ^(.+\\.)?kunde1\\.de$", "www.kunde1.de", True),
    ("req.ssl_sni -m dom example", "a.example.com", True),
    ("req.ssl_sni -m sub ampl", "a.example.com", True),
    ("req.ssl_sni -m len 5:10", "a.example.com", False),
    ("req.ssl_sni -m found", "x.test", True),
])
def test_server_name_matching_methods(test: str, name: str, holds: bool) -> None:
    condition = frontend(f"    use_backend sni if {{ {test} }}\n").use_backends[0].condition
    assert condition is not None
    predicate = compile_condition(condition)
    assert predicate(facts(hello(name), final=True)) is holds
    assert predicate(facts(hello(name)[:30])) is None  # more bytes could still decide
    assert predicate(facts(b"GET / HTTP/1.0\r\n\r\n")) is False  # not TLS: never


def test_req_ssl_alpn_matches_any_protocol_the_client_offers() -> None:
    """HAProxy's recipe for TLS-ALPN-01 challenges beside HTTPS: ``use_backend bk_acme if
    { req.ssl_alpn acme-tls/1 }``; each offered protocol is one value of the sample."""
    condition = frontend("    use_backend sni if { req.ssl_alpn acme-tls/1 }\n"
                         ).use_backends[0].condition
    assert condition is not None
    predicate = compile_condition(condition)
    assert predicate(facts(alpn_hello(("h2", "acme-tls/1")), final=True)) is True
    assert predicate(facts(alpn_hello(("h2", "http/1.1")), final=True)) is False
    assert predicate(facts(hello("x.test"), final=True)) is False  # no ALPN at all
    assert predicate(facts(alpn_hello(("acme-tls/1",))[:30])) is None  # more bytes decide


def test_connection_rules_test_addresses_only() -> None:
    with pytest.raises(Exception, match="available at connection time"):
        frontend("    tcp-request connection reject if { req.ssl_sni -m found }\n")
    rules = frontend("    tcp-request connection reject if { src 192.0.2.0/24 }\n").tcp_request
    assert rules is not None
    compiled = compile_rules(rules.connection)
    assert evaluate(compiled, facts(final=True)) is Verdict.REJECT
    assert evaluate(compiled, facts(final=True, src="198.51.100.9")) is Verdict.ACCEPT
