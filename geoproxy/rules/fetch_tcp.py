"""The fetches of a connection's first bytes, for ``mode tcp`` (docs/tcp.md; manual 7.3.5).

Rules:
1. In a TCP proxy they read the connection's ``TcpFacts`` (``Txn.tcp``): ``req.ssl_sni``,
   ``req.ssl_alpn`` and ``req.ssl_hello_type`` from a TLS ClientHello
   (``geoproxy.tcp.clienthello``), ``req.len`` and ``req.payload(OFFSET,LENGTH)`` from the
   bytes buffered, ``req.proto_http`` (the predefined ACL ``HTTP``) from an HTTP request head
   in them, ``wait_end`` (the predefined ACL ``WAIT_END``) once ``tcp-request inspect-delay``
   is over.
2. A value the bytes so far cannot give yet is no sample here; ``geoproxy.tcp.conditions``
   asks ``TcpFacts`` first whether it would come later, and waits (HAProxy's
   ``SMP_F_MAY_CHANGE``).
3. In an HTTP proxy the request is a whole HTTP request: ``req.proto_http`` and ``wait_end``
   hold, the others have no sample.
"""

from __future__ import annotations

from typing import Final

from geoproxy.rules.calls import arg_int
from geoproxy.rules.fetch_types import Args, CompileEnv, Fetch, FetchDef
from geoproxy.rules.txn import Txn
from geoproxy.tcp.facts import NoValue


def _value(found: object) -> object:
    return None if isinstance(found, NoValue) else found


def _sni(txn: Txn) -> object:
    facts = txn.tcp
    return None if facts is None else _value(facts.server_name())


def _alpn_all(txn: Txn) -> tuple[str, ...]:
    facts = txn.tcp
    found = None if facts is None else facts.alpn()
    return found if isinstance(found, tuple) else ()


def _alpn(txn: Txn) -> object:
    offered = _alpn_all(txn)
    return offered[0] if offered else None


def _hello_type(txn: Txn) -> object:
    facts = txn.tcp
    return None if facts is None else _value(facts.hello_type())


def _length(txn: Txn) -> object:
    facts = txn.tcp
    return None if facts is None else len(facts.payload)


def _proto_http(txn: Txn) -> object:
    facts = txn.tcp
    return True if facts is None else isinstance(facts.http_request(), dict)


def _wait_end(txn: Txn) -> object:
    facts = txn.tcp
    return True if facts is None else facts.final


def _payload(args: Args, env: CompileEnv) -> Fetch:
    offset, length = arg_int(args[0]), arg_int(args[1])

    def fetch(txn: Txn) -> object:
        facts = txn.tcp
        return None if facts is None else _value(facts.payload_slice(offset, length))

    return fetch


F = FetchDef
TCP_FETCHES: Final[dict[str, FetchDef]] = {
    "req.ssl_sni": F("", "str", lambda args, env: _sni, needs="any"),
    "req_ssl_sni": F("", "str", lambda args, env: _sni, needs="any"),
    "req.ssl_alpn": F("", "str", lambda args, env: _alpn, lambda args, env: _alpn_all,
                      needs="any"),
    "req.ssl_hello_type": F("", "int", lambda args, env: _hello_type, needs="any"),
    "req_ssl_hello_type": F("", "int", lambda args, env: _hello_type, needs="any"),
    "req.len": F("", "int", lambda args, env: _length, needs="any"),
    "req_len": F("", "int", lambda args, env: _length, needs="any"),
    "req.payload": F("ii", "bin", _payload, needs="any"),
    "payload": F("ii", "bin", _payload, needs="any"),
    "req.proto_http": F("", "bool", lambda args, env: _proto_http, needs="any"),
    "req_proto_http": F("", "bool", lambda args, env: _proto_http, needs="any"),
    "wait_end": F("", "bool", lambda args, env: _wait_end, needs="any"),
}
# the fetches whose sample may still come with more bytes (rule 2), for geoproxy.tcp
BUFFER_FETCHES: Final = frozenset(TCP_FETCHES) - {"req.len", "req_len"}
