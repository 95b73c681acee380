"""The sample fetch table: every fetch geoproxy evaluates, with HAProxy 2.6's meaning (pure).

Rules (configuration manual 7.3):
1. One entry per fetch name: its argument signature (``calls.py``), its output type (which
   picks an ACL's default matching method), what it needs (``req``: the request's headers,
   unavailable to response rules; ``res``: the response; ``any``), and ``make``, which turns
   checked arguments into a closure over a ``Txn``, once, at start-up. Fetches that see
   several values (``hdr``, ``req.cook``, ``url_param``...) also have ``make_all``: an ACL
   tries every value, a sample expression takes one (the last, or the occurrence asked for).
2. ``path`` is the request target's path (no query, not decoded; an absolute-form target
   loses its scheme and authority), ``url`` the target as sent, ``query`` what follows the
   first ``?`` (no sample without one), ``base`` the first Host value followed by the path
   (the path alone without Host).
3. ``hdr`` reads the request's headers in request rules and the response's in response rules.
   Header values are split on commas outside quotes; the worker joins repeated fields, so
   ``req.fhdr`` sees one line per header name (docs/rules.md lists this difference).
4. A connection's TLS: ``ssl_fc``, ``ssl_fc_sni|protocol|cipher|alpn``, ``ssl_c_used|verify``,
   ``ssl_c_s_dn``, ``ssl_c_i_dn`` (``fetch_ssl.py``); other ``ssl_*`` fetches are refused, as
   are the ``req.ssl_*`` ones of a ClientHello but ``req.ssl_sni``, ``req.ssl_alpn`` and
   ``req.ssl_hello_type`` (``fetch_tcp.py``).
5. Stick counters (``sc_*``, ``sc0_*``..``sc2_*``, ``src_*``, ``table_cnt``, ``table_avl``)
   are ``fetch_counters.py``'s entries, added to this table.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from typing import Final

from geoproxy.rules.calls import arg_int
from geoproxy.rules.fetch_counters import COUNTER_FETCHES
from geoproxy.rules.fetch_http import (
    converted_by,
    count_all,
    hdr,
    hdr_all,
    hdr_names,
    last_value,
    req_cook,
    req_cook_all,
    req_fhdr,
    req_fhdr_cnt,
    req_hdr,
    req_hdr_all,
    req_hdr_cnt,
    res_cook,
    res_cook_all,
    res_fhdr,
    res_fhdr_cnt,
    res_hdr,
    res_hdr_all,
    res_hdr_cnt,
    url_param,
    url_param_all,
)
from geoproxy.rules.fetch_ssl import SSL_FETCHES
from geoproxy.rules.fetch_tcp import TCP_FETCHES
from geoproxy.rules.fetch_types import Args, CompileEnv, Fetch, FetchDef
from geoproxy.rules.txn import Txn
from geoproxy.rules.values import to_int, to_ip, to_str

__all__ = ["FETCHES", "CompileEnv", "FetchDef", "request_path"]

# -- the request target (rule 2) ----------------------------------------------------------


def request_path(environ: Mapping[str, object]) -> str:
    """The path as the client sent it (no query, not decoded); absolute-form URIs lose their
    scheme and authority, as HAProxy's ``path`` does."""
    uri = str(environ.get("RAW_URI") or environ.get("PATH_INFO") or "/")
    if not uri.startswith("/"):
        scheme_end = uri.find("://")
        if scheme_end >= 0:
            slash = uri.find("/", scheme_end + 3)
            uri = uri[slash:] if slash >= 0 else "/"
    query = uri.find("?")
    return uri if query < 0 else uri[:query]


def _path(txn: Txn) -> object:
    return request_path(txn.environ)


def _url(txn: Txn) -> object:
    return txn.environ.get("RAW_URI") or None


def _query(txn: Txn) -> object:
    uri: str = txn.environ.get("RAW_URI") or ""
    mark = uri.find("?")
    return None if mark < 0 else uri[mark + 1 :]


def _base(txn: Txn) -> object:
    host = last_value(txn.environ.get("HTTP_HOST"))
    path = request_path(txn.environ)
    return host + path if host else path


_KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
                                   "OPTIONS", "TRACE"})


def _method(txn: Txn) -> object:
    """HAProxy keeps the method it parsed for the methods it knows: ``set-method`` changes
    what the server gets, not what ``method`` returns then."""
    original = txn.request_line[0]
    return original if original in _KNOWN_METHODS else txn.environ.get("REQUEST_METHOD")


def _version(txn: Txn) -> object:
    return str(txn.environ.get("SERVER_PROTOCOL", "HTTP/1.1")).partition("/")[2] or None


# -- connection, proxy, variables, constants ----------------------------------------------


# parsed addresses and ports, per process: clients come back (bounded: clients choose them)
_addresses: dict[str, object] = {}
_ports: dict[str, object] = {}


def _cached(cache: dict[str, object], text: str, parse: Callable[[str], object]) -> object:
    found = cache.get(text)
    if found is None:
        found = parse(text)
        if len(cache) >= 4096:
            cache.clear()
        cache[text] = found
    return found


def _src(txn: Txn) -> object:
    return _cached(_addresses, txn.environ.get("REMOTE_ADDR", ""), to_ip)


def _src_port(txn: Txn) -> object:
    return _cached(_ports, txn.environ.get("REMOTE_PORT", ""), to_int)


def _dst(txn: Txn) -> object:
    local = txn.environ.get("geoproxy.local_address") or txn.environ.get("SERVER_NAME", "")
    return _cached(_addresses, local, to_ip)


def _dst_port(txn: Txn) -> object:
    return _cached(_ports, txn.environ.get("SERVER_PORT", ""), to_int)


def _var(args: Args, env: CompileEnv) -> Fetch:
    name = str(args[0])
    if len(args) > 1:
        default = args[1]
        return lambda txn: (value if (value := txn.get_var(name)) is not None else default)
    return lambda txn: txn.get_var(name)


def _constant(convert: Callable[[str], object]) -> Callable[[Args, CompileEnv], Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        value = convert(str(args[0])) if args else None
        return lambda txn: value

    return made


def _bool_arg(text: str) -> object:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return None


def _fixed(value: object) -> Callable[[Args, CompileEnv], Fetch]:
    return lambda args, env: (lambda txn: value)


def _simple(fetch: Fetch) -> Callable[[Args, CompileEnv], Fetch]:
    return lambda args, env: fetch


def _env_fetch(args: Args, env: CompileEnv) -> Fetch:
    value = os.environ.get(str(args[0]))
    return lambda txn: value


def _hostname(args: Args, env: CompileEnv) -> Fetch:
    name = socket.gethostname()
    return lambda txn: name


def _date(args: Args, env: CompileEnv) -> Fetch:
    offset = arg_int(args[0]) if args else 0
    unit = str(args[1]) if len(args) > 1 else "s"
    scale = {"s": 1, "ms": 1000, "us": 1_000_000}.get(unit, 1)
    return lambda txn: int(txn.now * scale) + offset


def _nbsrv(args: Args, env: CompileEnv) -> Fetch:
    backend = str(args[0]) if args else ""
    return lambda txn: txn.nbsrv(backend or txn.backend)


def _capture(slot_of: Callable[[Txn], list[str | None] | None]) -> Callable[[Args, CompileEnv],
                                                                             Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        index = arg_int(args[0])

        def fetch(txn: Txn) -> object:
            slots = slot_of(txn)
            if slots is None or not 0 <= index < len(slots):
                return None
            return slots[index]

        return fetch

    return made


def _capture_uri(txn: Txn) -> object:
    return txn.request_line[1] or None


def _capture_method(txn: Txn) -> object:
    return txn.request_line[0] or None


def _capture_version(txn: Txn) -> object:
    return txn.request_line[2].partition("/")[2] or None


def _auth(kind: str) -> Callable[[Args, CompileEnv], Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        users = env.userlists.get(str(args[0])) if args else None
        if kind == "check":
            return lambda txn: users is not None and users.check(
                txn.environ.get("HTTP_AUTHORIZATION")) is not None
        return lambda txn: None if users is None else users.group_of(
            txn.environ.get("HTTP_AUTHORIZATION"))

    return made


def _auth_part(index: int) -> Fetch:
    from geoproxy.rules.auth import basic_credentials

    def fetch(txn: Txn) -> object:
        header = txn.environ.get("HTTP_AUTHORIZATION")
        if index == 0:
            return header.partition(" ")[0] if header else None
        credentials = basic_credentials(header)
        return None if credentials is None else credentials[index - 1]

    return fetch


def _environ_text(key: str) -> Callable[[Args, CompileEnv], Callable[[Txn], str | None]]:
    return lambda args, env: (lambda txn: txn.environ.get(key) or None)


F = FetchDef
_STR, _INT, _BOOL, _IP = "str", "int", "bool", "ip"

FETCHES: Final[dict[str, FetchDef]] = {
    # request line (rule 2)
    "method": F("", "meth", _simple(_method)),
    "path": F("", _STR, _simple(_path)),
    "url": F("", _STR, _simple(_url)),
    "query": F("", _STR, _simple(_query)),
    "base": F("", _STR, _simple(_base)),
    "req.ver": F("", _STR, _simple(_version)),
    "req_ver": F("", _STR, _simple(_version)),
    "url_param": F("|ss", _STR, url_param, url_param_all),
    "urlp": F("|ss", _STR, url_param, url_param_all),
    "urlp_val": F("|ss", _INT, converted_by(to_int, url_param)),
    # request headers (rule 3)
    "hdr": F("|Si", _STR, hdr, hdr_all, needs="any"),
    "req.hdr": F("|Si", _STR, req_hdr, req_hdr_all),
    "req.fhdr": F("S|i", _STR, req_fhdr),
    "hdr_cnt": F("|S", _INT, req_hdr_cnt),
    "req.hdr_cnt": F("|S", _INT, req_hdr_cnt),
    "req.fhdr_cnt": F("|S", _INT, req_fhdr_cnt),
    "hdr_val": F("S|i", _INT, converted_by(to_int, req_hdr)),
    "req.hdr_val": F("S|i", _INT, converted_by(to_int, req_hdr)),
    "hdr_ip": F("S|i", _IP, converted_by(to_ip, req_hdr)),
    "req.hdr_ip": F("S|i", _IP, converted_by(to_ip, req_hdr)),
    "req.hdr_names": F("|s", _STR, hdr_names),
    "req.cook": F("|s", _STR, req_cook, req_cook_all),
    "cook": F("|s", _STR, req_cook, req_cook_all),
    "cookie": F("|s", _STR, req_cook, req_cook_all),
    "req.cook_cnt": F("|s", _INT, count_all(req_cook_all)),
    "cook_cnt": F("|s", _INT, count_all(req_cook_all)),
    "req.cook_val": F("|s", _INT, converted_by(to_int, req_cook)),
    "cook_val": F("|s", _INT, converted_by(to_int, req_cook)),
    "http_auth": F("S", _BOOL, _auth("check")),
    "http_auth_group": F("S", _STR, _auth("group")),
    "http_auth_type": F("", _STR, _simple(_auth_part(0))),
    "http_auth_user": F("", _STR, _simple(_auth_part(1))),
    "http_auth_pass": F("", _STR, _simple(_auth_part(2))),
    # the response
    "status": F("", _INT, _simple(lambda txn: txn.status or None), needs="res"),
    "txn.status": F("", _INT, _simple(lambda txn: txn.status or None), needs="any"),
    "res.ver": F("", _STR, _fixed("1.1"), needs="res"),
    "resp_ver": F("", _STR, _fixed("1.1"), needs="res"),
    "res.hdr": F("|Si", _STR, res_hdr, res_hdr_all, needs="res"),
    "shdr": F("|Si", _STR, res_hdr, res_hdr_all, needs="res"),
    "res.fhdr": F("S|i", _STR, res_fhdr, needs="res"),
    "res.hdr_cnt": F("|S", _INT, res_hdr_cnt, needs="res"),
    "shdr_cnt": F("|S", _INT, res_hdr_cnt, needs="res"),
    "res.fhdr_cnt": F("|S", _INT, res_fhdr_cnt, needs="res"),
    "res.hdr_val": F("S|i", _INT, converted_by(to_int, res_hdr), needs="res"),
    "shdr_val": F("S|i", _INT, converted_by(to_int, res_hdr), needs="res"),
    "res.hdr_ip": F("S|i", _IP, converted_by(to_ip, res_hdr), needs="res"),
    "res.cook": F("|s", _STR, res_cook, res_cook_all, needs="res"),
    "scook": F("|s", _STR, res_cook, res_cook_all, needs="res"),
    "set-cookie": F("|s", _STR, res_cook, res_cook_all, needs="res"),
    "res.cook_cnt": F("|s", _INT, count_all(res_cook_all), needs="res"),
    "res.cook_val": F("|s", _INT, converted_by(to_int, res_cook), needs="res"),
    # captures (``capture request|response header``, ``http-request capture``)
    "capture.req.hdr": F("i", _STR, _capture(lambda txn: txn.captures), needs="any"),
    "capture.res.hdr": F("i", _STR, _capture(lambda txn: txn.res_captures), needs="any"),
    "capture.req.uri": F("", _STR, _simple(_capture_uri), needs="any"),
    "capture.req.method": F("", _STR, _simple(_capture_method), needs="any"),
    "capture.req.ver": F("", _STR, _simple(_capture_version), needs="any"),
    "capture.res.ver": F("", _STR, _fixed("1.1"), needs="res"),
    # connection and proxies
    "src": F("", _IP, _simple(_src), needs="any", make_text=_environ_text("REMOTE_ADDR")),
    "src_port": F("", _INT, _simple(_src_port), needs="any",
                  make_text=_environ_text("REMOTE_PORT")),
    "dst": F("", _IP, _simple(_dst), needs="any"),
    "dst_port": F("", _INT, _simple(_dst_port), needs="any",
                  make_text=_environ_text("SERVER_PORT")),
    "fe_name": F("", _STR, _simple(lambda txn: txn.frontend or None), needs="any"),
    "be_name": F("", _STR, _simple(lambda txn: txn.backend or None), needs="any"),
    "srv_name": F("", _STR, _simple(lambda txn: txn.server or None), needs="res"),
    "nbsrv": F("|S", _INT, _nbsrv, needs="any"),
    # variables, environment, time, constants
    "var": F("v|s", _STR, _var, needs="any"),
    "env": F("S", _STR, _env_fetch, needs="any"),
    "hostname": F("", _STR, _hostname, needs="any"),
    "date": F("|is", _INT, _date, needs="any"),
    "always_true": F("", _BOOL, _fixed(True), needs="any"),
    "always_false": F("", _BOOL, _fixed(False), needs="any"),
    "int": F("i", _INT, _constant(int), needs="any"),
    "str": F("s", _STR, _constant(str), needs="any"),
    "bool": F("S", _BOOL, _constant(_bool_arg), needs="any"),
    "meth": F("S", "meth", _constant(str), needs="any"),
    "ipv4": F("S", _IP, _constant(lambda t: ipaddress.IPv4Address(t)), needs="any"),
    "ipv6": F("S", _IP, _constant(lambda t: ipaddress.IPv6Address(t)), needs="any"),
    "bin": F("S", "bin", _constant(bytes.fromhex), needs="any"),
    "stopping": F("", _BOOL, _fixed(False), needs="any"),
    **COUNTER_FETCHES,  # rule 5
    # a connection's first bytes, for mode tcp (fetch_tcp.py)
    **TCP_FETCHES,
    # a connection's TLS (fetch_ssl.py)
    **SSL_FETCHES,
}

# ACL keywords that are a fetch with an implied matching method (``path_beg``): HAProxy's
# derived ACLs. ``-m`` cannot change their method.
_DERIVED_FAMILIES: Final = {
    "path": "path", "url": "url", "base": "base", "hdr": "hdr", "cook": "req.cook",
    "shdr": "res.hdr", "scook": "res.cook", "urlp": "url_param",
}
DERIVED: Final[dict[str, tuple[str, str]]] = {
    f"{family}_{method}": (fetch, method)
    for family, fetch in _DERIVED_FAMILIES.items()
    for method in ("beg", "end", "sub", "dir", "dom", "reg", "len")
}
# the derived ACLs geoproxy reads as a fetch and a method (``url_ip``/``url_port`` read the
# host part of an absolute URI: refused below)

# Refused with a reason, by prefix (rule 4).
REFUSED_PREFIXES: Final[dict[str, str]] = {
    "ssl_": "geoproxy's TLS fetches are ssl_fc, ssl_fc_sni, ssl_fc_protocol, ssl_fc_cipher, "
            "ssl_fc_alpn, ssl_c_used, ssl_c_verify, ssl_c_s_dn and ssl_c_i_dn",
    "req.ssl": "geoproxy reads only req.ssl_sni and req.ssl_hello_type of a ClientHello",
    "req_ssl": "geoproxy reads only req.ssl_sni and req.ssl_hello_type of a ClientHello",
    "lua.": "geoproxy does not run Lua",
    "req.body": "geoproxy streams request bodies and never buffers them for fetches",
    "res.body": "geoproxy streams response bodies and never buffers them for fetches",
}


def refused_reason(name: str) -> str | None:
    """Why fetch ``name`` is refused, when it is one of the refused families (rule 4)."""
    for prefix, reason in REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    return None


def describe(value: object) -> str:
    """A sample as text for messages."""
    return to_str(value) or ""
