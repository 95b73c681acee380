"""Listening and server addresses: ``bind`` and ``server`` arguments.

Rules (HAProxy's ``str2sa_range()``):
1. An address is ``HOST:PORT`` where HOST is an IPv4 address, ``[IPv6]``, an unbracketed IPv6
   address (the port follows the last colon), a host name, or empty/``*`` (every IPv4 address,
   kept as ``0.0.0.0``). An ``ipv4@``, ``ipv6@``, ``tcp@``, ``tcp4@`` or ``tcp6@`` prefix is
   accepted; UNIX sockets, inherited descriptors and other families are refused: geoproxy
   speaks TCP only.
2. Host names are kept as written; nothing is resolved at load time.
3. Ports are 1-65535. A ``bind`` port may be a range ``80-85`` (one listener per port); a
   server port may not. A server address without a port is HAProxy's "mapped port": each
   request goes to the port the client connected to (returned as port 0).
4. Environment variables are expanded in addresses even outside double quotes, as HAProxy's
   ``str2sa_range()`` does (its ``env_expand()``): ``$NAME`` or ``${NAME}``, the name made of
   letters, digits and ``_``; an unset variable expands to nothing.
5. A server address ``*``, ``0.0.0.0`` or ``::`` is HAProxy's "destination address": each
   request goes to the address the client connected to.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping

_TCP_PREFIXES = ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@")
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?", re.ASCII)
_PORT = re.compile(r"\d+")
_VARIABLE = re.compile(r"\$(\{?)([A-Za-z0-9_]*)(\}?)")
WILDCARD = "0.0.0.0"
MAPPED_PORT = 0  # a server address without a port (rule 3)


class AddressError(Exception):
    """An address HAProxy or geoproxy cannot use; the message is HAProxy's detail text."""


def expand(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with its environment variables expanded as HAProxy's ``env_expand()`` does
    (rule 4). A closing brace is consumed only when a brace opened the name."""
    if "$" not in text:
        return text
    variables = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        expanded = variables.get(match.group(2), "") if match.group(2) else ""
        if match.group(3) and not match.group(1):
            expanded += "}"
        return expanded

    return _VARIABLE.sub(value, text)


def is_host_name(text: str) -> bool:
    """Letters, digits, ``_``, ``.`` and ``-``, as a host name may be written."""
    return _HOSTNAME.fullmatch(text) is not None


def parse_bind(text: str) -> list[tuple[str, int]]:
    """Every ``(host, port)`` of one ``bind`` address list (``a:80,b:81``, ranges)."""
    addresses: list[tuple[str, int]] = []
    for item in text.split(","):
        host, port_text = _split(item, text)
        first, last = _port_range(port_text or "", item)
        addresses.extend((host or WILDCARD, port) for port in range(first, last + 1))
    return addresses


def parse_server(text: str) -> tuple[str, int]:
    """The ``(host, port)`` of a ``server`` address; port ``MAPPED_PORT`` when it has none."""
    host, port_text = _split(text, text, port_optional=True)
    if not host:
        if port_text is None:
            raise AddressError(f"missing address in '{text}'")
        host = WILDCARD  # '*:PORT': the address the client connected to (rule 5)
    if port_text is None:
        return host, MAPPED_PORT
    if port_text[:1] in ("+", "-"):
        raise AddressError(f"port offsets are not supported by geoproxy in '{text}'")
    first, last = _port_range(port_text, text)
    if first != last:
        raise AddressError(f"port range not permitted here in '{text}'")
    return host, first


def _split(item: str, whole: str, port_optional: bool = False) -> tuple[str, str | None]:
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
            if port_optional:
                return host, None
            raise AddressError(f"missing port specification in '{item}'")
        return host, rest[1:]
    host, colon, port = address.rpartition(":")
    if not colon:
        if port_optional and address:
            _check_host(address, item, ipv6_only=False)
            return address, None
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
