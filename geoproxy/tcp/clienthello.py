"""What a TLS ClientHello says before anything is decrypted: HAProxy's ``req.ssl_hello_type``,
``req.ssl_sni`` (SNI passthrough) and ``req.ssl_alpn``.

Rules (RFC 8446 5.1 and 4.1.2, RFC 6066 3; HAProxy's ``smp_fetch_ssl_hello_type`` and
``smp_fetch_ssl_hello_sni``):
1. Only the first TLS record is read, as HAProxy reads it: content type 22 (handshake), version
   3.x, then a handshake message whose type is the hello type (1: ClientHello).
2. Three answers: a value; ``NOT_TLS`` (these bytes can never be a hello: no match, whatever
   comes next); ``INCOMPLETE`` (a prefix of a hello: wait for more bytes, within
   ``tcp-request inspect-delay``). A server name is looked for only in a complete ClientHello.
3. The server name is the first ``host_name`` entry of the ``server_name`` extension, as
   ASCII; a hello without one has no name (``NOT_TLS`` is not returned then: the bytes are TLS).
4. The ALPN protocols (RFC 7301) are the names of the ``application_layer_protocol_negotiation``
   extension, in the client's order: HAProxy returns each as one value of a multi-valued
   sample (an ACL matches when one of them does; elsewhere the first one counts).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Hello(enum.Enum):
    NOT_TLS = "not-tls"
    INCOMPLETE = "incomplete"
    NO_NAME = "no-name"  # a complete ClientHello without a server name (or without ALPN)


_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_ALPN = 16


@dataclass(frozen=True, slots=True)
class _Record:
    body: bytes  # the handshake message as far as it arrived
    complete: bool


def _first_record(data: bytes) -> _Record | Hello:
    if not data:
        return Hello.INCOMPLETE
    if data[0] != _HANDSHAKE:
        return Hello.NOT_TLS
    if len(data) >= 2 and data[1] != 3:
        return Hello.NOT_TLS
    if len(data) < 5:
        return Hello.INCOMPLETE
    length = int.from_bytes(data[3:5], "big")
    body = data[5 : 5 + length]
    return _Record(body, len(body) == length)


def hello_type(data: bytes) -> int | Hello:
    """``req.ssl_hello_type``: the handshake type of the first record (1: ClientHello, 2:
    ServerHello), ``NOT_TLS`` or ``INCOMPLETE`` (rule 2)."""
    record = _first_record(data)
    if isinstance(record, Hello):
        return record
    body = record.body
    if len(body) < 4:
        return Hello.INCOMPLETE if not record.complete else Hello.NOT_TLS
    message_length = int.from_bytes(body[1:4], "big")
    if len(body) < 4 + message_length:
        return Hello.INCOMPLETE if not record.complete else Hello.NOT_TLS
    return body[0]


def server_name(data: bytes) -> str | Hello:
    """``req.ssl_sni``: the server name of a ClientHello (rules 1 to 3)."""
    extension = _extension(data, _SERVER_NAME)
    return extension if isinstance(extension, Hello) else _host_name(extension)


def protocols(data: bytes) -> tuple[str, ...] | Hello:
    """``req.ssl_alpn``: the ALPN protocols a ClientHello offers (rules 1, 2 and 4)."""
    extension = _extension(data, _ALPN)
    return extension if isinstance(extension, Hello) else _protocol_names(extension)


def _extension(data: bytes, wanted: int) -> bytes | Hello:
    """The body of extension ``wanted`` of a whole ClientHello; ``NO_NAME`` without it."""
    kind = hello_type(data)
    if isinstance(kind, Hello):
        return kind
    if kind != _CLIENT_HELLO:
        return Hello.NOT_TLS
    record = _first_record(data)
    assert isinstance(record, _Record)
    try:
        return _find(record.body, wanted)
    except (IndexError, ValueError):
        return Hello.NOT_TLS


def _find(body: bytes, wanted: int) -> bytes | Hello:
    """Extension ``wanted`` in a whole ClientHello message (handshake header included)."""
    end = 4 + int.from_bytes(body[1:4], "big")
    at = 4 + 2 + 32  # header, client_version, random
    at += 1 + body[at]  # session id
    at += 2 + int.from_bytes(body[at : at + 2], "big")  # cipher suites
    at += 1 + body[at]  # compression methods
    if at + 2 > end:
        return Hello.NO_NAME  # no extensions at all
    extensions_end = min(end, at + 2 + int.from_bytes(body[at : at + 2], "big"))
    at += 2
    while at + 4 <= extensions_end:
        kind = int.from_bytes(body[at : at + 2], "big")
        size = int.from_bytes(body[at + 2 : at + 4], "big")
        at += 4
        if kind == wanted:
            return body[at : at + size]
        at += size
    return Hello.NO_NAME


def _protocol_names(extension: bytes) -> tuple[str, ...] | Hello:
    at, end = 2, min(len(extension), 2 + int.from_bytes(extension[0:2], "big"))
    names = []
    while at < end:
        size = extension[at]
        name = extension[at + 1 : at + 1 + size]
        if len(name) != size or not size:
            break
        names.append(name.decode("ascii", "replace"))
        at += 1 + size
    return tuple(names) if names else Hello.NO_NAME


def _host_name(extension: bytes) -> str | Hello:
    at, end = 2, min(len(extension), 2 + int.from_bytes(extension[0:2], "big"))
    while at + 3 <= end:
        name_type = extension[at]
        size = int.from_bytes(extension[at + 1 : at + 3], "big")
        name = extension[at + 3 : at + 3 + size]
        if name_type == 0 and len(name) == size:
            return name.decode("ascii", "replace")
        at += 3 + size
    return Hello.NO_NAME
