"""The parts of HAProxy's protocol checks that are code rather than patterns (tcpcheck.c's
custom expect functions and the ``ssl-hello-chk`` hello), pure.

Each ``expect_*`` function reads the bytes received so far and answers ``WAIT`` (more bytes
are needed), or an ``Outcome``: passed or not, HAProxy's status code, and its text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

WAIT: Final = None


@dataclass(frozen=True, slots=True)
class Outcome:
    passed: bool
    status: str  # L7OK, L7STS, L7RSP ...
    info: str = ""
    code: int = 0  # the protocol's own error code, when it gave one


def _mysql_packet(data: bytes, offset: int, last: bool, final_rule: bool) -> Outcome | None:
    """HAProxy's ``tcpcheck_mysql_expect_packet``: the packet at ``offset``."""
    if len(data) < offset + 4:
        return WAIT if not last else Outcome(False, "L7RSP")
    length = int.from_bytes(data[offset : offset + 3], "little")
    if len(data) < offset + length + 4:
        return WAIT if not last else Outcome(False, "L7RSP")
    if data[offset + 4] == 0xFF:  # an error packet
        code = int.from_bytes(data[offset + 5 : offset + 7], "little")
        text = data[offset + 7 :].decode("latin-1", "replace")
        return Outcome(False, "L7STS", text, code)
    if not final_rule:
        return Outcome(True, "")
    # the server version, from the initial handshake, for information
    version = data[5:].split(b"\x00", 1)[0].decode("latin-1", "replace")
    return Outcome(True, "L7OK", version)


def expect_mysql_hello(data: bytes, last: bool, final_rule: bool) -> Outcome | None:
    return _mysql_packet(data, 0, last, final_rule)


def expect_mysql_ok(data: bytes, last: bool, final_rule: bool) -> Outcome | None:
    if len(data) < 3:
        return WAIT if not last else Outcome(False, "L7RSP")
    hello = 4 + int.from_bytes(data[0:3], "little")
    return _mysql_packet(data, hello, last, final_rule)


def expect_ldap_bind(data: bytes, last: bool, final_rule: bool) -> Outcome | None:
    """HAProxy's ``tcpcheck_ldap_expect_bindrsp``: an LDAPv3 bindResponse, resultCode 0."""
    try:
        extra = data[1] & 0x7F if data[1] & 0x80 else 0
        if extra > 2 or data[2 + extra : 6 + extra] != b"\x02\x01\x01\x61":
            return Outcome(False, "L7RSP", "Not LDAPv3 protocol")
        more = data[extra + 6] & 0x7F if data[extra + 6] & 0x80 else 0
        extra += more
        if extra > 4 or data[7 + extra : 9 + extra] != b"\x0a\x01":
            return Outcome(False, "L7RSP", "Not LDAPv3 protocol")
        code = data[extra + 9]
    except IndexError:
        return WAIT if not last else Outcome(False, "L7RSP", "Not LDAPv3 protocol")
    if code:
        return Outcome(False, "L7STS", "See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9",
                       code)
    return Outcome(True, "L7OK", "Success")


CUSTOM = {
    "mysql-hello": expect_mysql_hello,
    "mysql-ok": expect_mysql_ok,
    "ldap": expect_ldap_bind,
}

_CIPHERS = (
    "0001 0002 0003 0004 0005 0006 0007 0008 0009 000A 000B 000C 000D 000E 000F 0010 0011 0012 "
    "0013 0014 0015 0016 0017 0018 0019 001A 001B 002F 0030 0031 0032 0033 0034 0035 0036 0037 "
    "0038 0039 003A"
)


def sslv3_hello(now: float | None = None) -> bytes:
    """``option ssl-hello-chk``'s SSLv3 ClientHello, byte for byte as HAProxy builds it: the
    time in the random, then "HAPROXYSSLCHK\\n" twice, and 39 common cipher suites."""
    clock = int(time.time() if now is None else now) & 0xFFFFFFFF
    body = (
        bytes.fromhex("0300")  # hello version SSLv3
        + clock.to_bytes(4, "big")
        + b"HAPROXYSSLCHK\nHAPROXYSSLCHK\n"
        + b"\x00"  # no session id
        + bytes.fromhex("004E")
        + bytes.fromhex(_CIPHERS.replace(" ", ""))
        + b"\x01\x00"  # one compression method: none
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x00" + len(handshake).to_bytes(2, "big") + handshake
