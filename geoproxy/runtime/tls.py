"""TLS for listening sockets: each bind's SSL contexts, SNI's choice among them, and the
handshake of one client connection.

Rules:
1. Contexts are built once per worker process (``BindContexts``), one per certificate, all
   with the bind's options; the first certificate's is the default. A worker builds them from
   the files as they are when it starts, so a reload (SIGHUP: new workers) serves renewed
   certificates while the old workers finish their connections with the old ones.
2. SNI (``sni_callback``) picks the context whose names match the server name: an exact name
   first, then a wildcard (``*.example.com`` matches one label); a crt-list line's ``!name``
   excludes that name from it. No match (or no SNI): the default, or a refused handshake under
   ``strict-sni``.
3. The handshake runs in the connection's greenlet, bounded by ``timeout client``. One that
   fails or times out closes the connection; it is never an error of the worker.
4. What rules read of a connection's TLS (``ssl_fc_*``, ``ssl_c_*``) is taken once, after the
   handshake, into a ``TlsFacts`` the connection's base environ carries (``TLS_FACTS``).
5. Python's ``ssl`` has no setter for TLS 1.3 cipher suites nor for a list of curves: they are
   set on the context's ``SSL_CTX`` through ctypes (``SSL_CTX_set_ciphersuites``,
   ``SSL_CTX_ctrl(SET_GROUPS_LIST)``), from the library Python's ``_ssl`` is linked with; the
   suites are read back (``get_ciphers``) to make sure they took.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import warnings
from typing import Any, Final

from geoproxy.config.model_tls import TLS_VERSIONS, BindTls, Certificate, TlsOptions
from geoproxy.rules.fetch_ssl import TLS_FACTS, TlsFacts, dn_entries

__all__ = ["TLS_FACTS", "BindContexts", "TlsFacts", "TlsListeners", "handshake"]

log = logging.getLogger("geoproxy")
SNI_ATTRIBUTE: Final = "geoproxy_sni"  # where the SNI callback leaves the name it saw
_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_SET_GROUPS_LIST = 92  # SSL_CTRL_SET_GROUPS_LIST (OpenSSL's ssl.h)


class TlsSetupError(Exception):
    """Options that make no context (a wrong cipher string, curve, file)."""


# -- contexts ----------------------------------------------------------------------------------

def server_context(options: TlsOptions, certificate: Certificate) -> ssl.SSLContext:
    """One listening context: ``certificate`` with ``options``; raises ``TlsSetupError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certificate.path, certificate.key_path)
        _apply(context, options)
        alpn = certificate.alpn if certificate.alpn is not None else options.alpn
        if alpn:
            context.set_alpn_protocols(list(alpn))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsSetupError(str(exc)) from exc
    return context


def _apply(context: ssl.SSLContext, options: TlsOptions) -> None:
    low = options.min_version if options.min_version is not None else 3
    high = options.max_version if options.max_version is not None else len(TLS_VERSIONS) - 1
    set_versions_and_ciphers(context, (low, high), options.ciphers, options.ciphersuites,
                             options.curves)
    if options.verify and options.verify != "none":
        context.verify_mode = _VERIFY[options.verify]
    if options.ca_file:
        context.load_verify_locations(cafile=options.ca_file)
    if options.dh_param_file:
        context.load_dh_params(options.dh_param_file)
    if options.no_tls_tickets:
        context.options |= ssl.OP_NO_TICKET
    if options.prefer_client_ciphers:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE  # HAProxy's default


class BindContexts:
    """A bind's contexts and SNI's choice among them (rules 1 and 2)."""

    __slots__ = ("default", "strict", "_exact", "_wildcard", "_excluded")

    @classmethod
    def refusing(cls) -> BindContexts:
        """Contexts that refuse every handshake (``TlsListeners``)."""
        contexts = cls.__new__(cls)
        contexts.strict = True
        contexts._exact, contexts._wildcard, contexts._excluded = {}, {}, {}
        contexts.default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        contexts.default.sni_callback = lambda *_: ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return contexts

    def __init__(self, tls: BindTls) -> None:
        self.strict = tls.strict_sni
        self._exact: dict[str, ssl.SSLContext] = {}
        self._wildcard: dict[str, ssl.SSLContext] = {}
        self._excluded: dict[int, frozenset[str]] = {}
        contexts = [server_context(tls.options, c) for c in tls.certificates]
        for context, certificate in zip(contexts, tls.certificates, strict=True):
            self._excluded[id(context)] = frozenset(certificate.excluded)
            for name in certificate.names:
                table = self._wildcard if name.startswith("*.") else self._exact
                table.setdefault(name[2:] if name.startswith("*.") else name, context)
        self.default = contexts[0]
        self.default.sni_callback = self._choose

    def choose(self, server_name: str | None) -> ssl.SSLContext | None:
        """The context for ``server_name``; None: none matched (the default serves, unless
        ``strict-sni``)."""
        if not server_name:
            return None
        name = server_name.lower().rstrip(".")
        found = self._exact.get(name)
        if found is not None:
            return found
        parent = name.partition(".")[2]
        found = self._wildcard.get(parent) if parent else None
        if found is not None and name not in self._excluded[id(found)]:
            return found
        return None

    def _choose(self, connection: Any, server_name: str | None, _: ssl.SSLContext) -> int | None:
        if server_name:
            setattr(connection, SNI_ATTRIBUTE, server_name)  # (the SSLSocket: ssl_fc_sni)
        chosen = self.choose(server_name)
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if self.strict else None
        if chosen is not self.default:
            connection.context = chosen
        return None


# -- ctypes: what Python's ssl does not set (rule 5) --------------------------------------------

def _library() -> Any:
    import _ssl

    return ctypes.CDLL(_ssl.__file__)  # dlsym also searches libssl, which _ssl links with


def _ssl_ctx(context: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` of ``context``: the first field of CPython's ``PySSLContext``, right
    after the object header."""
    address = id(context) + 2 * ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(address).value
    if not pointer:
        raise TlsSetupError("cannot reach the SSL context")
    return pointer


def set_versions_and_ciphers(context: ssl.SSLContext, versions: tuple[int | None, int | None],
                             ciphers: str | None, ciphersuites: str | None,
                             curves: str | None) -> None:
    """A context's protocol versions (indexes into ``TLS_VERSIONS``; None: OpenSSL's bound),
    cipher list (TLS 1.2 and below), TLS 1.3 ciphersuites and curves, on either side."""
    low, high = versions
    with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated; asked for all the same
        warnings.simplefilter("ignore", DeprecationWarning)
        if low is not None:
            context.minimum_version = _VERSIONS[TLS_VERSIONS[low]]
        if high is not None:
            context.maximum_version = _VERSIONS[TLS_VERSIONS[high]]
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise TlsSetupError(f"unable to set SSL cipher list to '{ciphers}'") from exc
    if ciphersuites:
        set_ciphersuites(context, ciphersuites)
    if curves:
        set_curves(context, curves)


def set_ciphersuites(context: ssl.SSLContext, suites: str) -> None:
    try:
        function = _library().SSL_CTX_set_ciphersuites
    except (OSError, AttributeError) as exc:
        raise TlsSetupError(f"ciphersuites cannot be set with this Python ({exc})") from exc
    function.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    function.restype = ctypes.c_int
    if function(_ssl_ctx(context), suites.encode()) != 1:
        raise TlsSetupError(f"unable to set TLS 1.3 cipher suites to '{suites}'")
    got = {c["name"] for c in context.get_ciphers() if c.get("protocol") == "TLSv1.3"}
    wanted = {s for s in suites.split(":") if s}
    if not got or not got <= wanted:
        raise TlsSetupError(f"the TLS 1.3 cipher suites '{suites}' did not take")


def set_curves(context: ssl.SSLContext, curves: str) -> None:
    try:
        function = _library().SSL_CTX_ctrl
    except (OSError, AttributeError) as exc:
        if ":" not in curves:
            context.set_ecdh_curve(curves)
            return
        raise TlsSetupError(f"curves cannot be set with this Python ({exc})") from exc
    function.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    function.restype = ctypes.c_long
    if function(_ssl_ctx(context), _SET_GROUPS_LIST, 0, ctypes.c_char_p(curves.encode())) != 1:
        raise TlsSetupError(f"unable to set SSL curves list to '{curves}'")


# -- a connection -------------------------------------------------------------------------------

def handshake(sock: Any, contexts: BindContexts, timeout: float | None) -> tuple[Any, TlsFacts]:
    """Wrap ``sock`` and run the server handshake within ``timeout`` seconds (rule 3); raises
    OSError (``ssl.SSLError`` among them) when it fails."""
    tls_sock = contexts.default.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
    try:
        tls_sock.settimeout(timeout)
        tls_sock.do_handshake()
        return tls_sock, facts_of(tls_sock)
    except BaseException:
        tls_sock.close()  # it owns the descriptor now: the caller's socket is detached
        raise


def handshake_failure(error: BaseException) -> tuple[str, bool]:
    """HAProxy's words for a failed handshake, and whether the client sent nothing (then
    ``option dontlognull`` keeps it out of the log, as HAProxy does)."""
    if isinstance(error, TimeoutError):
        return "Timeout during SSL handshake", True
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError)):
        return "Connection closed during SSL handshake", True
    return "SSL handshake failure", False


def facts_of(tls_sock: Any) -> TlsFacts:
    cipher = tls_sock.cipher()
    peer = tls_sock.getpeercert() if tls_sock.getpeercert(True) is not None else None
    return TlsFacts(
        sni=getattr(tls_sock, SNI_ATTRIBUTE, None),
        protocol=tls_sock.version(),
        cipher=cipher[0] if cipher else None,
        alpn=tls_sock.selected_alpn_protocol(),
        subject=dn_entries(peer.get("subject", ())) if peer is not None else None,
        issuer=dn_entries(peer.get("issuer", ())) if peer is not None else None,
    )


class TlsListeners:
    """A worker's TLS binds (rule 1): each bind's ``BindContexts``, found by the name of its
    listening socket as ``frontend_gate.frontend_of`` finds a frontend (same host and port,
    else same port: a wildcard bind's socket is named 0.0.0.0). A bind whose files no longer
    load (changed since the configuration was checked) gets contexts that refuse every
    handshake, and one error line: never a plain-text service on a TLS port, nor a worker
    that dies at start."""

    __slots__ = ("_by_address", "_by_port")

    def __init__(self, binds: Any) -> None:
        self._by_address: dict[tuple[str, int], BindContexts] = {}
        self._by_port: dict[int, BindContexts] = {}
        for bind in binds:
            if bind.tls is None:
                continue
            try:
                contexts = BindContexts(bind.tls)
            except TlsSetupError as error:
                log.error("bind %s: its TLS files do not load (%s): its handshakes are "
                          "refused until a reload", bind.location, error)
                contexts = BindContexts.refusing()
            host = "0.0.0.0" if bind.host in ("", "*") else bind.host
            self._by_address[(host, bind.port)] = contexts
            self._by_port.setdefault(bind.port, contexts)

    def __bool__(self) -> bool:
        return bool(self._by_address)

    def get(self, name: Any) -> BindContexts | None:
        if not isinstance(name, tuple) or not self._by_address:
            return None
        host, port = str(name[0]), name[1]
        return self._by_address.get((host, port)) or self._by_port.get(port)
