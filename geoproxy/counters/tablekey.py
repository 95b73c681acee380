"""A sample as a stick table's key (pure): HAProxy converts the sample to the table's type,
and a sample that does not convert tracks nothing.

- ``ip``: an IPv4 address (an IPv6 one only when it maps an IPv4 one, ``::ffff:a.b.c.d``);
  a string or an integer is read as an address, as HAProxy casts them.
- ``ipv6``: an IPv6 address; an IPv4 one is mapped (``::ffff:a.b.c.d``, RFC 4291).
- ``integer``: the sample as an integer.
- ``string``: the sample as text, cut to the table's ``len``.
- ``binary``: the sample's bytes, cut or padded with zeroes to ``len``, written in hex.

The text is what follows ``gp:{T}:sc:`` in Redis, and what persistence keys look like for
the same table types (``geoproxy.proxy.sticky``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from geoproxy.rules.values import to_bytes, to_int, to_ip, to_str

KeyOf = Callable[[object], str | None]


def key_converter(table_type: str, length: int) -> KeyOf:
    """The sample -> key function of a table of ``table_type`` (``ip``, ``ipv6``,
    ``integer``, ``string``, ``binary``) and key length ``length``."""
    if table_type == "ip":
        return _remembered(_ipv4)
    if table_type == "ipv6":
        return _remembered(_ipv6)
    if table_type == "integer":
        return lambda value: None if (number := to_int(value)) is None else str(number)
    if table_type == "binary":
        def binary(value: object) -> str | None:
            data = to_bytes(value)
            return None if data is None else data[:length].ljust(length, b"\0").hex()

        return binary

    def string(value: object) -> str | None:
        if type(value) is str:
            return value[:length]
        text = to_str(value)
        return None if text is None else text[:length]

    if table_type == "string":
        return _remembered(string, only_addresses=True)
    return string


def _remembered(convert: KeyOf, only_addresses: bool = False) -> KeyOf:
    """``convert`` with the keys of the last few thousand samples remembered: clients come
    back, and an address's text is costly to make (per process, bounded)."""
    known: dict[object, str | None] = {}

    def cached(value: object) -> str | None:
        if only_addresses and not isinstance(value, ipaddress.IPv4Address
                                             | ipaddress.IPv6Address):
            return convert(value)
        try:
            return known[value]
        except KeyError:
            pass
        except TypeError:  # not hashable
            return convert(value)
        key = convert(value)
        if len(known) >= 4096:
            known.clear()
        known[value] = key
        return key

    return cached


def _ipv4(value: object) -> str | None:
    if type(value) is ipaddress.IPv4Address:
        return str(value)
    address = to_ip(value)
    if address is None:
        return None
    if address.version == 6:
        mapped = address.ipv4_mapped
        return None if mapped is None else str(mapped)
    return str(address)


def _ipv6(value: object) -> str | None:
    address = to_ip(value)
    if address is None:
        return None
    if address.version == 4:
        return str(ipaddress.IPv6Address(f"::ffff:{address}"))
    return str(address)
