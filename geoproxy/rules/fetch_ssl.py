"""The fetches of a connection's TLS: ``ssl_fc*`` (the client's connection) and ``ssl_c_*``
(its certificate), with HAProxy 2.6's meaning (manual 7.3.4; pure).

Rules:
1. They read the ``TlsFacts`` that the worker put in the connection's base environ after the
   handshake (``TLS_FACTS``); a connection without TLS has none.
2. ``ssl_fc`` is a boolean on every connection (false without TLS); the others have no sample
   on a connection without TLS, and ``ssl_fc_sni``/``ssl_fc_alpn`` none when the client sent
   no name or no protocol was agreed; the ``ssl_c_*`` ones none without a client certificate
   (``ssl_c_used`` is then false, ``ssl_c_verify`` 0: a certificate that does not verify
   fails the handshake, as HAProxy's without ``ca-ignore-err``).
3. ``ssl_c_s_dn``/``ssl_c_i_dn`` give the DN in OpenSSL's one-line form (``/C=FR/CN=name``);
   with an entry (``ssl_c_s_dn(CN)``) its value, the first occurrence unless another is asked
   (negative counts from the last).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from geoproxy.rules.calls import arg_int
from geoproxy.rules.fetch_types import Args, CompileEnv, Fetch, FetchDef
from geoproxy.rules.txn import Txn

TLS_FACTS: Final = "geoproxy.tls"  # the environ key of a connection's TlsFacts

# getpeercert()'s long names -> OpenSSL's short ones, as X509_NAME_oneline prints them
SHORT_NAMES: Final = {
    "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
    "organizationName": "O", "organizationalUnitName": "OU", "commonName": "CN",
    "emailAddress": "emailAddress", "domainComponent": "DC", "serialNumber": "serialNumber",
    "givenName": "GN", "surname": "SN", "title": "title", "userId": "UID",
}
_LONG_NAMES: Final = {short.lower(): long for long, short in SHORT_NAMES.items()}


@dataclass(frozen=True, slots=True)
class TlsFacts:
    """One connection's TLS, taken once after its handshake. ``subject``/``issuer`` are the
    client certificate's DN entries, ``(short name, value)`` in order; None without one."""

    sni: str | None
    protocol: str | None
    cipher: str | None
    alpn: str | None
    subject: tuple[tuple[str, str], ...] | None = None
    issuer: tuple[tuple[str, str], ...] | None = None


def dn_entries(name: object) -> tuple[tuple[str, str], ...]:
    """``getpeercert()``'s ``subject``/``issuer`` as ``(short name, value)`` entries."""
    entries: list[tuple[str, str]] = []
    for rdn in name if isinstance(name, tuple) else ():
        for key, value in rdn:
            entries.append((SHORT_NAMES.get(key, key), str(value)))
    return tuple(entries)


def one_line(entries: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"/{key}={value}" for key, value in entries)


def _facts(txn: Txn) -> TlsFacts | None:
    facts = txn.environ.get(TLS_FACTS)
    return facts if isinstance(facts, TlsFacts) else None


def _ssl_fc(txn: Txn) -> object:
    return _facts(txn) is not None


def _field(name: str) -> Fetch:
    def fetch(txn: Txn) -> object:
        facts = _facts(txn)
        return None if facts is None else getattr(facts, name) or None

    return fetch


def _c_used(txn: Txn) -> object:
    facts = _facts(txn)
    return None if facts is None else facts.subject is not None


def _c_verify(txn: Txn) -> object:
    return None if _facts(txn) is None else 0


def _dn(which: str) -> Callable[[Args, CompileEnv], Fetch]:
    def make(args: Args, env: CompileEnv) -> Fetch:
        entry = str(args[0]) if args and args[0] not in (None, "") else None
        occurrence = arg_int(args[1]) if len(args) > 1 and args[1] not in (None, "") else 1
        wanted = None if entry is None else SHORT_NAMES.get(entry, entry)
        if wanted is not None and wanted.lower() in _LONG_NAMES:
            wanted = SHORT_NAMES[_LONG_NAMES[wanted.lower()]]

        def fetch(txn: Txn) -> object:
            facts = _facts(txn)
            entries = None if facts is None else getattr(facts, which)
            if entries is None:
                return None
            if wanted is None:
                return one_line(entries)
            values = [value for key, value in entries if key == wanted]
            index = occurrence - 1 if occurrence > 0 else len(values) + occurrence
            return values[index] if 0 <= index < len(values) and occurrence else None

        return fetch

    return make


F = FetchDef
SSL_FETCHES: Final[dict[str, FetchDef]] = {
    "ssl_fc": F("", "bool", lambda args, env: _ssl_fc, needs="any"),
    "ssl_fc_sni": F("", "str", lambda args, env: _field("sni"), needs="any"),
    "ssl_fc_protocol": F("", "str", lambda args, env: _field("protocol"), needs="any"),
    "ssl_fc_cipher": F("", "str", lambda args, env: _field("cipher"), needs="any"),
    "ssl_fc_alpn": F("", "str", lambda args, env: _field("alpn"), needs="any"),
    "ssl_c_used": F("", "bool", lambda args, env: _c_used, needs="any"),
    "ssl_c_verify": F("", "int", lambda args, env: _c_verify, needs="any"),
    "ssl_c_s_dn": F("|si", "str", _dn("subject"), needs="any"),
    "ssl_c_i_dn": F("|si", "str", _dn("issuer"), needs="any"),
}
