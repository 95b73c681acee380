"""What a TLS ClientHello says before decryption (geoproxy.tcp.clienthello): HAProxy's
``req.ssl_hello_type``, ``req.ssl_sni`` and ``req.ssl_alpn``. The hellos are real ones,
written by Python's own TLS client (OpenSSL) into memory."""

from __future__ import annotations

import functools
import ssl

import pytest

from geoproxy.tcp.clienthello import Hello, hello_type, protocols, server_name


@functools.cache
def client_hello(name: str | None, alpn: tuple[str, ...] = ()) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_the_server_name_of_a_whole_client_hello_is_read() -> None:
    hello = client_hello("one.example.com")
    assert hello_type(hello) == 1
    assert server_name(hello) == "one.example.com"


def test_bytes_after_the_hello_change_nothing() -> None:
    assert server_name(client_hello("b.test") + b"\x17\x03\x03garbage") == "b.test"


@pytest.mark.parametrize("cut", [0, 1, 3, 5, 9, 60, -1])
def test_a_prefix_of_a_hello_asks_for_more_bytes(cut: int) -> None:
    hello = client_hello("one.example.com")
    assert server_name(hello[:cut]) is Hello.INCOMPLETE
    assert hello_type(hello[:cut]) is Hello.INCOMPLETE


def test_a_hello_without_a_server_name_is_tls_without_a_name() -> None:
    hello = client_hello(None)
    assert hello_type(hello) == 1
    assert server_name(hello) is Hello.NO_NAME


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\r\n", b"\x16\x02\x01", b"SSH-2.0-x\r\n",
                                  b"\x15\x03\x01\x00\x02\x02\x28"])
def test_bytes_that_cannot_be_a_hello_are_not_tls(data: bytes) -> None:
    assert server_name(data) is Hello.NOT_TLS


def test_a_server_hello_has_its_type_and_no_name() -> None:
    server_hello = b"\x16\x03\x03\x00\x08" + b"\x02\x00\x00\x04" + b"\x03\x03\x00\x00"
    assert hello_type(server_hello) == 2
    assert server_name(server_hello) is Hello.NOT_TLS


def test_the_alpn_protocols_are_read_in_the_clients_order() -> None:
    hello = client_hello("a.test", ("acme-tls/1", "h2", "http/1.1"))
    assert protocols(hello) == ("acme-tls/1", "h2", "http/1.1")
    assert server_name(hello) == "a.test"


def test_a_hello_without_alpn_has_no_protocols_and_a_prefix_asks_for_more() -> None:
    assert protocols(client_hello("a.test")) is Hello.NO_NAME
    assert protocols(client_hello("a.test", ("h2",))[:40]) is Hello.INCOMPLETE
    assert protocols(b"GET / HTTP/1.1\r\n") is Hello.NOT_TLS
