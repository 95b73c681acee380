"""The PROXY protocol (geoproxy.tcp.proxyproto): headers as haproxy.org's proxy-protocol.txt
spells them, read back, cut short, or broken."""

from __future__ import annotations

import pytest

from geoproxy.tcp.proxyproto import (
    INCOMPLETE,
    SIGNATURE,
    Addresses,
    ProxyHeader,
    ProxyHeaderError,
    decode,
    encode_v1,
    encode_v2,
)

V4 = Addresses(("192.0.2.7", 51234), ("198.51.100.1", 443))
V6 = Addresses(("2001:db8::7", 51234), ("2001:db8::1", 443))


def test_version_1_is_the_documented_text_line() -> None:
    assert encode_v1(V4) == b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 443\r\n"
    assert encode_v1(V6) == b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n"
    assert encode_v1(None) == b"PROXY UNKNOWN\r\n"


def test_version_2_is_the_signature_then_the_binary_addresses() -> None:
    header = encode_v2(V4)
    assert header[:12] == SIGNATURE
    assert header[12:16] == b"\x21\x11\x00\x0c"  # v2 PROXY, TCP over IPv4, 12 bytes
    assert header[16:] == bytes([192, 0, 2, 7, 198, 51, 100, 1]) + (51234).to_bytes(2, "big") \
        + (443).to_bytes(2, "big")
    assert encode_v2(V6)[12:16] == b"\x21\x21\x00\x24"
    assert encode_v2(None) == SIGNATURE + b"\x20\x00\x00\x00"  # LOCAL: a health check


@pytest.mark.parametrize("addresses", [V4, V6])
@pytest.mark.parametrize("encode", [encode_v1, encode_v2])
def test_a_header_reads_back_with_its_length(addresses: Addresses, encode: object) -> None:
    header = encode(addresses)  # type: ignore[operator]
    assert decode(header + b"payload") == ProxyHeader(addresses, len(header))


@pytest.mark.parametrize("encode", [encode_v1, encode_v2])
def test_every_prefix_of_a_header_asks_for_more(encode: object) -> None:
    header: bytes = encode(V4)  # type: ignore[operator]
    for cut in range(len(header)):
        assert decode(header[:cut]) is INCOMPLETE


def test_local_and_unknown_keep_the_connections_own_addresses() -> None:
    assert decode(encode_v2(None)) == ProxyHeader(None, 16)
    assert decode(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").addresses is None  # type: ignore[union-attr]


def test_v2_tlvs_after_the_addresses_are_skipped() -> None:
    body = encode_v2(V4)[16:] + b"\x04\x00\x01\x00"  # a NOOP TLV
    header = SIGNATURE + b"\x21\x11" + len(body).to_bytes(2, "big") + body
    assert decode(header) == ProxyHeader(V4, len(header))


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
    b"PROXY TCP4 ::1 ::2 1 2\r\n",
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY " + b"x" * 120,
    b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00",
    SIGNATURE + b"\x31\x11\x00\x00",
])
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        decode(data)
