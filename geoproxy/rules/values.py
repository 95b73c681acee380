"""Sample values and HAProxy's casts between their types (pure).

A sample is a Python value whose type is HAProxy's sample type: ``str`` (str, and the method
type), ``int`` (sint), ``bool``, ``IPv4Address``/``IPv6Address`` (ipv4, ipv6) or ``bytes``
(bin). None means "no sample": the fetch found nothing, or a cast or a converter failed.

Casts (HAProxy's ``sample_casts``): int -> str in decimal; bool -> int 0/1, -> str "0"/"1";
str -> int reads an optional sign and the leading digits (no digit: no sample); str -> ip
parses an address (not one: no sample); ip -> str in its usual text form.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Value = str | int | bool | Address | bytes

_LEADING_INT: Final = re.compile(r"[ \t]*([-+]?\d+)")


def to_str(value: object) -> str | None:
    if type(value) is str or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return None


def to_int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        match = _LEADING_INT.match(value)
        return int(match.group(1)) if match else None
    if isinstance(value, ipaddress.IPv4Address):
        return int(value)
    return None


def to_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    number = to_int(value)
    return None if number is None else number != 0


def to_ip(value: object) -> Address | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    text = to_str(value)
    if text is None:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def to_bytes(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value.packed
    text = to_str(value)
    return None if text is None else text.encode("latin-1", "replace")


def show(value: object) -> str:
    """A sample as a log-format string shows it ("-" for no sample is the caller's job)."""
    text = to_str(value)
    return "" if text is None else text
