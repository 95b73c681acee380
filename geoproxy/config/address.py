"""Listening and server addresses: ``bind`` and ``server`` arguments.

Rules (HAProxy's ``str2sa_range()``):
1. An address is ``HOST:PORT`` where HOST is an IPv4 address, ``[IPv6]``, an unbracketed IPv6
   address (the port follows the last colon), a host name, or empty/``*`` (every IPv4 address,
   kept as ``0.0.0.0``). An ``ipv4@``, ``ipv6@``, ``tcp@``, ``tcp4@`` or ``tcp6@`` prefix is
   accepted; UNIX sockets, inherited descriptors and other families are refused: geoproxy
   speaks TCP only.
2. Host names are kept as written; nothing is resolved at load time.
3. Ports are 1-65535. A ``bind`` port may be a range ``80-85`` (one listener per port); a
   server port may not. geoproxy needs the server's port (HAProxy's port-less server reuses
   the client's destination port, which geoproxy does not know).
"""

from __future__ import annotations

import ipaddress
import re

_TCP_PREFIXES = ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@")
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?", re.ASCII)
_PORT = re.compile(r"\d+")
WILDCARD = "0.0.0.0"


class AddressError(Exception):
    """An address HAProxy or geoproxy cannot use; the message is HAProxy's detail text."""


def parse_bind(text: str) -> list[tuple[str, int]]:
    """Every ``(host, port)`` of one ``bind`` address list (``a:80,b:81``, ranges)."""
    addresses: list[tuple[str, int]] = []
    for item in text.split(","):
        host, port_text = _split(item, text)
        first, last = _port_range(port_text, item)
        addresses.extend((host or WILDCARD, port) for port in range(first, last + 1))
    return addresses


def parse_server(text: str) -> tuple[str, int]:
    """The ``(host, port)`` of a ``server`` address."""
    host, port_text = _split(text, text)
    if not host:
        raise AddressError(f"missing address in '{text}'")
    if port_text[:1] in ("+", "-"):
        raise AddressError(f"port offsets are not supported by geoproxy in '{text}'")
    first, last = _port_range(port_text, text)
    if first != last:
        raise AddressError(f"port range not permitted here in '{text}'")
    return host, first


def _split(item: str, whole: str) -> tuple[str, str]:
    address = item
    for prefix in _TCP_PREFIXES:
        if address.startswith(prefix):
            address = address[len(prefix):]
            break
    else:
        if "@" in address or address.startswith("/"):
            raise AddressError(
                f"'{whole}' is not a TCP address: geoproxy listens and connects over TCP only")
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise AddressError(f"invalid address: '{item}'")
        _check_host(host, item, ipv6_only=True)
        if not rest:
            raise AddressError(f"missing port specification in '{item}'")
        return host, rest[1:]
    host, colon, port = address.rpartition(":")
    if not colon:
        raise AddressError(f"missing port specification in '{item}'")
    host = "" if host == "*" else host
    if host:
        _check_host(host, item, ipv6_only=False)
    return host, port


def _check_host(host: str, item: str, ipv6_only: bool) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if ipv6_only or not _HOSTNAME.fullmatch(host):
            raise AddressError(f"invalid address: '{host}' in '{item}'") from None
        return
    if ipv6_only and address.version != 6:
        raise AddressError(f"invalid address: '{host}' in '{item}'")


def _port_range(text: str, item: str) -> tuple[int, int]:
    if not text:
        raise AddressError(f"missing port specification in '{item}'")
    first_text, dash, last_text = text.partition("-")
    first = _port(first_text)
    last = _port(last_text) if dash else first
    if last < first:
        raise AddressError(f"invalid port range '{text}'")
    return first, last


def _port(text: str) -> int:
    port = int(text) if _PORT.fullmatch(text) else 0
    if not 1 <= port <= 65535:
        raise AddressError(f"invalid port '{text}'")
    return port


def is_host_name(text: str) -> bool:
    """Whether ``text`` is a host name HAProxy would resolve (letters, digits, ``_.-``)."""
    return _HOSTNAME.fullmatch(text) is not None
