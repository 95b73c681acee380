"""The PROXY protocol (haproxy.org's proxy-protocol.txt), both versions: the header a
``send-proxy``/``send-proxy-v2`` server receives first, and the one an ``accept-proxy`` bind
reads first.

Rules:
1. Version 1 is one text line, ``PROXY TCP4|TCP6 SRC DST SPORT DPORT\\r\\n`` (at most 107
   bytes), or ``PROXY UNKNOWN...\\r\\n``. Version 2 is the 12-byte signature, a version and
   command byte (0x21 PROXY, 0x20 LOCAL), a family byte (0x11 TCP over IPv4, 0x21 over IPv6,
   0x00 unspecified), a length, the addresses, then TLVs (skipped when reading).
2. A header geoproxy sends for a health check (``check-send-proxy``) has no client: version 2
   says LOCAL, version 1 says UNKNOWN, as HAProxy's checks do.
3. Reading answers the client's real addresses, ``None`` for a LOCAL or UNKNOWN header (keep
   the connection's own), ``INCOMPLETE`` (read more), or raises ``ProxyHeaderError``: the
   connection is then closed, as HAProxy closes it.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107
_V2_HEADER = 16


class ProxyHeaderError(Exception):
    """The connection does not start with a valid PROXY protocol header."""


class Partial(enum.Enum):
    INCOMPLETE = "incomplete"


INCOMPLETE = Partial.INCOMPLETE


@dataclass(frozen=True, slots=True)
class Addresses:
    """The client's connection as the sender saw it: source and destination (host, port)."""

    source: tuple[str, int]
    destination: tuple[str, int]


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A header read: ``addresses`` (None: LOCAL/UNKNOWN) and its ``length`` in bytes."""

    addresses: Addresses | None
    length: int


def _family(host: str) -> int:
    return ipaddress.ip_address(host.split("%", 1)[0]).version


def encode_v1(addresses: Addresses | None) -> bytes:
    """A version 1 header for ``addresses`` (None: ``PROXY UNKNOWN``)."""
    if addresses is None:
        return b"PROXY UNKNOWN\r\n"
    (src, sport), (dst, dport) = addresses.source, addresses.destination
    try:
        families = {_family(src), _family(dst)}
    except ValueError:
        return b"PROXY UNKNOWN\r\n"
    if families == {4}:
        proto = "TCP4"
    elif families == {6}:
        proto = "TCP6"
    else:  # mixed families: both as IPv6 (IPv4-mapped), as HAProxy does
        proto = "TCP6"
        src, dst = _as_v6(src), _as_v6(dst)
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode("ascii")


def _as_v6(host: str) -> str:
    address = ipaddress.ip_address(host)
    if address.version == 6:
        return host
    return str(ipaddress.IPv6Address(f"::ffff:{host}"))


def encode_v2(addresses: Addresses | None) -> bytes:
    """A version 2 header for ``addresses`` (None: the LOCAL command, no address)."""
    if addresses is None:
        return SIGNATURE + b"\x20\x00\x00\x00"
    (src, sport), (dst, dport) = addresses.source, addresses.destination
    try:
        source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError:
        return SIGNATURE + b"\x21\x00\x00\x00"  # PROXY, unspecified family
    if source.version != destination.version:
        source = ipaddress.IPv6Address(f"::ffff:{source}") if source.version == 4 else source
        destination = (ipaddress.IPv6Address(f"::ffff:{destination}")
                       if destination.version == 4 else destination)
    family = b"\x11" if source.version == 4 else b"\x21"
    body = source.packed + destination.packed + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return SIGNATURE + b"\x21" + family + len(body).to_bytes(2, "big") + body


def decode(data: bytes) -> ProxyHeader | Partial:
    """The header at the start of ``data`` (rule 3). Raises ``ProxyHeaderError``."""
    if not data:
        return INCOMPLETE
    if data[:1] == b"\r":  # only version 2 starts with CR: its signature
        if not data[: len(SIGNATURE)] == SIGNATURE[: len(data)]:
            raise ProxyHeaderError("not a PROXY protocol header")
        return INCOMPLETE if len(data) < len(SIGNATURE) else _decode_v2(data)
    return _decode_v1(data)


def _decode_v1(data: bytes) -> ProxyHeader | Partial:
    if not b"PROXY ".startswith(data[:6]):
        raise ProxyHeaderError("not a PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError("PROXY protocol v1 line too long")
        return INCOMPLETE
    words = data[:end].decode("ascii", "replace").split(" ")
    length = end + 2
    if len(words) >= 2 and words[1] == "UNKNOWN":
        return ProxyHeader(None, length)
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"invalid PROXY protocol v1 line: {data[:end]!r}")
    try:
        version = 4 if words[1] == "TCP4" else 6
        src, dst = ipaddress.ip_address(words[2]), ipaddress.ip_address(words[3])
        sport, dport = int(words[4]), int(words[5])
    except ValueError as exc:
        raise ProxyHeaderError(f"invalid PROXY protocol v1 line: {data[:end]!r}") from exc
    if src.version != version or dst.version != version or not (
        0 <= sport <= 65535 and 0 <= dport <= 65535
    ):
        raise ProxyHeaderError(f"invalid PROXY protocol v1 line: {data[:end]!r}")
    return ProxyHeader(Addresses((str(src), sport), (str(dst), dport)), length)


def _decode_v2(data: bytes) -> ProxyHeader | Partial:
    if len(data) < _V2_HEADER:
        return INCOMPLETE
    version_command, family = data[12], data[13]
    length = _V2_HEADER + int.from_bytes(data[14:16], "big")
    if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
        raise ProxyHeaderError("unsupported PROXY protocol v2 version or command")
    if len(data) < length:
        return INCOMPLETE
    if version_command & 0x0F == 0:  # LOCAL: the sender's own connection (a health check)
        return ProxyHeader(None, length)
    body = data[_V2_HEADER:length]
    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    if family == 0x11 and len(body) >= 12:
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        ports = body[8:12]
    elif family == 0x21 and len(body) >= 36:
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        ports = body[32:36]
    elif family in (0x11, 0x21):
        raise ProxyHeaderError("PROXY protocol v2 address block too short")
    else:  # UNSPEC, UNIX or datagram families: keep the connection's own addresses
        return ProxyHeader(None, length)
    addresses = Addresses(
        (str(src), int.from_bytes(ports[0:2], "big")),
        (str(dst), int.from_bytes(ports[2:4], "big")),
    )
    return ProxyHeader(addresses, length)
