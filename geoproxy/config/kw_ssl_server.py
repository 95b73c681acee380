"""TLS parameters of ``server`` and ``default-server`` lines: ``ssl``, ``verify``,
``ca-file``, ``crt``, ``sni``, ``verifyhost``, ``alpn``, ``ciphers``, ``ciphersuites``,
``curves``, ``ssl-min-ver``/``ssl-max-ver``, ``no-tlsv1x``, ``force-tlsv1x``, ``check-ssl``,
``check-sni``.

Rules (HAProxy 2.6's meaning; what geoproxy cannot honour is refused):
1. ``verify`` is ``none`` or ``required``; unset, it is the global ``ssl-server-verify``
   (``required`` by default), and a server that verifies needs a ``ca-file``: HAProxy's error.
2. ``sni EXPR`` is a sample expression, evaluated per request (``sni req.hdr(host)``); the
   keep-alive pool is then per server and name (``geoproxy/proxy/pools.py``). ``sni
   str(NAME)`` is a constant. ``check-sni`` is a name.
3. The server's certificate must hold the SNI's name when one is sent, else ``verifyhost``'s
   (HAProxy 2.6's order, checked against it), else only the chain is verified.
4. ``alpn`` may only offer ``http/1.1``: geoproxy speaks HTTP/1.1 to servers.
5. Checks run over TLS with ``check-ssl``, or when the server has ``ssl`` and no check
   ``port`` of its own (HAProxy's rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from geoproxy.config.context import Line
from geoproxy.config.kw_ssl import (
    TlsConfigError,
    check_ca_file,
    load_certificate,
    narrow,
    resolve,
    version_index,
)
from geoproxy.config.model import Server
from geoproxy.config.model_tls import ServerTls
from geoproxy.rules.calls import RuleError
from geoproxy.rules.expr import parse_expr

_CONSTANT_SNI = re.compile(r"str\(([A-Za-z0-9._-]+)\)")
_FORCE = ("force-tlsv10", "force-tlsv11", "force-tlsv12", "force-tlsv13")
# parameter -> argument count
SERVER_TLS_PARAMS: dict[str, int] = {
    "ssl": 0, "no-ssl": 0, "verify": 1, "ca-file": 1, "crt": 1, "sni": 1, "verifyhost": 1,
    "no-verifyhost": 0, "alpn": 1, "ciphers": 1, "ciphersuites": 1, "curves": 1,
    "ssl-min-ver": 1, "ssl-max-ver": 1, "check-ssl": 0, "no-check-ssl": 0, "check-sni": 1,
    "no-ssl-reuse": 0, **dict.fromkeys(_FORCE, 0),
    **dict.fromkeys(("no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13"), 0),
}
REFUSED_SERVER_TLS: dict[str, str] = {
    "npn": "NPN is obsolete and Python's ssl does not offer it",
    "crl-file": "certificate revocation lists are not checked by geoproxy",
    "check-alpn": "geoproxy's checks speak HTTP/1.1 over TLS without ALPN",
    "sigalgs": "geoproxy does not set signature algorithms",
    "client-sigalgs": "geoproxy does not set signature algorithms",
    "allow-0rtt": "geoproxy does not send TLS 1.3 early data",
    "ssl-reuse": "geoproxy does not resume TLS sessions to servers (every connection is a full "
                 "handshake; the keep-alive pool makes them rare)",
    "force-sslv3": "SSLv3 is not supported by geoproxy (Python's ssl has none)",
}
_NO_VERSIONS = ("no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13")


def is_server_tls_param(name: str) -> bool:
    return name in SERVER_TLS_PARAMS or name in REFUSED_SERVER_TLS


def server_param(server: Server, line: Line, name: str, value: str, label: str) -> Server:
    """Apply TLS parameter ``name`` (``value``: its argument) to ``server``."""
    if name in REFUSED_SERVER_TLS:
        line.fail(f"{label} : '{name}' is not supported by geoproxy: "
                  f"{REFUSED_SERVER_TLS[name]}.")
    try:
        return _READERS[name](server, line, value)
    except TlsConfigError as exc:
        line.fail(f"{label} : '{name}' : {exc}")


def finish_server(server: Server, line: Line, label: str) -> Server:
    """Rule 1, once the whole line is read (``server``, not ``default-server``)."""
    uses_tls = server.ssl or server.check_ssl
    if not uses_tls:
        return server
    verify = server.tls.verify or line.tls.server_verify
    if verify == "required" and server.tls.ca_file is None:
        line.fail(f"{label} : verify is enabled by default but no CA file specified. If "
                  "you're running on a LAN where you're certain to trust the server's "
                  "certificate, please set an explicit 'verify none' statement on the 'server' "
                  "line, or use 'ssl-server-verify none' in the global section to disable "
                  "server-side verifications by default.")
    defaults = line.tls
    low, high = narrow(
        set(server.tls.flags) | defaults.server_flags,
        server.tls.min_version if server.tls.min_version is not None else defaults.server_min,
        server.tls.max_version if server.tls.max_version is not None else defaults.server_max,
        line, label)
    tls = replace(
        server.tls, verify=verify,
        ciphers=server.tls.ciphers or defaults.server_ciphers,
        ciphersuites=server.tls.ciphersuites or defaults.server_ciphersuites,
        min_version=low, max_version=high)
    from geoproxy.runtime.tls_client import TlsSetupError, client_context

    try:
        client_context(tls)
    except TlsSetupError as exc:
        line.fail(f"{label} : {exc}.")
    return replace(server, tls=tls)


def checks_use_tls(server: Server) -> bool:
    """Rule 5."""
    return server.check_ssl or (server.ssl and server.check_port is None)


def _tls(change: Callable[[ServerTls, Line, str], ServerTls]) -> Callable[[Server, Line, str],
                                                                            Server]:
    return lambda server, line, value: replace(server, tls=change(server.tls, line, value))


def _verify(tls: ServerTls, line: Line, value: str) -> ServerTls:
    if value not in ("none", "required"):
        raise TlsConfigError(f"unknown verify method '{value}', only 'none' and 'required' "
                             "are supported.")
    return replace(tls, verify=value)


def _ca_file(tls: ServerTls, line: Line, value: str) -> ServerTls:
    path = resolve(value, line.tls.ca_base, line.config_dir)
    check_ca_file(path)
    return replace(tls, ca_file=path)


def _crt(tls: ServerTls, line: Line, value: str) -> ServerTls:
    path = resolve(value, line.tls.crt_base, line.config_dir)
    certificate = load_certificate(path)
    if certificate.key_path is not None:
        raise TlsConfigError(f"geoproxy reads a server's client certificate and its key from "
                             f"one PEM file; '{path}' holds no key.")
    return replace(tls, crt=path)


def _sni(tls: ServerTls, line: Line, value: str) -> ServerTls:
    found = _CONSTANT_SNI.fullmatch(value)
    if found is not None:
        return replace(tls, sni=found.group(1), sni_expr=None)
    try:
        expr = parse_expr(value, line.rules_context())
    except RuleError as exc:
        raise TlsConfigError(f"failed to parse sni expression '{value}': {exc}") from exc
    return replace(tls, sni=None, sni_expr=expr)


def _alpn(tls: ServerTls, line: Line, value: str) -> ServerTls:
    names = tuple(value.split(","))
    if names != ("http/1.1",):
        raise TlsConfigError(f"geoproxy speaks HTTP/1.1 to servers: only 'alpn http/1.1' is "
                             f"accepted (got '{value}').")
    return replace(tls, alpn=names)


def _flag(name: str) -> Callable[[ServerTls, Line, str], ServerTls]:
    """``no-tlsv1x``, ``force-tlsv1x``: narrowed with the bounds in ``finish_server``."""
    return lambda tls, line, value: replace(tls, flags=tuple(sorted({*tls.flags, name})))


_READERS: dict[str, Callable[[Server, Line, str], Server]] = {
    "ssl": lambda server, line, value: replace(server, ssl=True),
    "no-ssl": lambda server, line, value: replace(server, ssl=False),
    "check-ssl": lambda server, line, value: replace(server, check_ssl=True),
    "no-check-ssl": lambda server, line, value: replace(server, check_ssl=False),
    "no-ssl-reuse": lambda server, line, value: server,  # sessions are never resumed anyway
    "verify": _tls(_verify),
    "ca-file": _tls(_ca_file),
    "crt": _tls(_crt),
    "sni": _tls(_sni),
    "check-sni": _tls(lambda tls, line, value: replace(tls, check_sni=value)),
    "verifyhost": _tls(lambda tls, line, value: replace(tls, verifyhost=value)),
    "no-verifyhost": _tls(lambda tls, line, value: replace(tls, verifyhost=None)),
    "alpn": _tls(_alpn),
    "ciphers": _tls(lambda tls, line, value: replace(tls, ciphers=value)),
    "ciphersuites": _tls(lambda tls, line, value: replace(tls, ciphersuites=value)),
    "curves": _tls(lambda tls, line, value: replace(tls, curves=value)),
    "ssl-min-ver": _tls(lambda tls, line, value: replace(tls, min_version=version_index(value))),
    "ssl-max-ver": _tls(lambda tls, line, value: replace(tls, max_version=version_index(value))),
    **{name: _tls(_flag(name)) for name in (*_FORCE, *_NO_VERSIONS)},
}
