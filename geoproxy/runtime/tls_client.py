"""TLS to servers: one client context per server (built once per worker, with its pools and
its checks), and the handshake of one new connection.

Rules:
1. ``verify required`` verifies the chain against ``ca-file``, then the name: the SNI's when
   one is sent, else ``verifyhost``'s (HAProxy 2.6's order: its verify callback takes the
   SNI first), else none. The name is matched here, after the handshake (wildcards match one
   label), so that a name can be checked without being sent, as HAProxy does.
2. ``verify none`` verifies nothing.
3. A handshake bounded by ``timeout connect`` that fails, or a name that does not match, is a
   failed connection (the caller retries or answers 503, as for a refused TCP connect).
"""

from __future__ import annotations

import ssl
from typing import Any

from geoproxy.config.model_tls import ServerTls
from geoproxy.runtime.tls import TlsSetupError, set_versions_and_ciphers

__all__ = ["ClientTls", "TlsSetupError", "client_context"]

def client_context(tls: ServerTls) -> ssl.SSLContext:
    """The context of a server's connections; raises ``TlsSetupError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # rule 1: the name is matched after the handshake
    try:
        if tls.verify == "none":
            context.verify_mode = ssl.CERT_NONE
        else:
            context.verify_mode = ssl.CERT_REQUIRED
            if tls.ca_file:
                context.load_verify_locations(cafile=tls.ca_file)
        if tls.crt:
            context.load_cert_chain(tls.crt)
        set_versions_and_ciphers(context, (tls.min_version, tls.max_version), tls.ciphers,
                                 tls.ciphersuites, tls.curves)
        if tls.alpn:
            context.set_alpn_protocols(list(tls.alpn))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsSetupError(str(exc)) from exc
    return context


class ClientTls:
    """How connections to one server shake hands: its context, the SNI sent, the name its
    certificate must hold (rule 1)."""

    __slots__ = ("context", "server_name", "verify_name", "_verifyhost")

    def __init__(self, tls: ServerTls, *, for_checks: bool = False) -> None:
        self.context = client_context(tls)
        self._verifyhost = tls.verifyhost if tls.verify != "none" else None
        self._name(tls.check_sni if for_checks else tls.sni, tls.verify != "none")

    def _name(self, server_name: str | None, verify: bool) -> None:
        self.server_name = server_name
        self.verify_name = (server_name or self._verifyhost) if verify else None

    def named(self, server_name: str | None) -> ClientTls:
        """The same handshakes, sending SNI ``server_name`` (a server's ``sni EXPR``, per
        request): the context is shared."""
        other = ClientTls.__new__(ClientTls)
        other.context = self.context
        other._verifyhost = self._verifyhost
        other._name(server_name, self.context.verify_mode != ssl.CERT_NONE)
        return other

    def wrap(self, sock: Any, timeout: float | None) -> Any:
        """Shake hands over ``sock`` within ``timeout``: the TLS socket. Raises OSError
        (``ssl.SSLError`` among them) when the handshake or the name check fails (rule 3)."""
        tls_sock = self.context.wrap_socket(sock, server_hostname=self.server_name,
                                            do_handshake_on_connect=False)
        try:
            tls_sock.settimeout(timeout)
            tls_sock.do_handshake()
            if self.verify_name is not None and not _holds(tls_sock.getpeercert(),
                                                           self.verify_name):
                raise ssl.SSLCertVerificationError(
                    f"the server's certificate does not match '{self.verify_name}'")
        except BaseException:
            tls_sock.close()  # it owns the descriptor now: the caller's socket is detached
            raise
        return tls_sock


def _holds(certificate: Any, name: str) -> bool:
    """Whether ``certificate`` (``getpeercert()``) names ``name``: a DNS SAN, else the CN."""
    wanted = name.lower().rstrip(".")
    sans = [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]
    if not sans:
        sans = [value for rdn in certificate.get("subject", ()) for key, value in rdn
                if key == "commonName"]
    for pattern in sans:
        pattern = pattern.lower().rstrip(".")
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and wanted.partition(".")[2] == pattern[2:]:
            return True
    return False
