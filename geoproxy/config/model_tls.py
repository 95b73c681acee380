"""The typed TLS configuration: what a ``bind ... ssl`` line, a crt-list line and the ``global``
TLS keywords mean, once parsed (``kw_ssl.py``).

Rules:
1. Frozen, slotted dataclasses, as in ``model.py``. Paths are absolute (``crt-base``,
   ``ca-base`` and the configuration's directory already applied).
2. A ``TlsOptions`` holds what shapes one SSL context; ``None`` means "as the global default
   says" (``ssl-default-bind-*``), then as HAProxy 2.6 defaults (minimum TLSv1.2).
3. A ``Certificate`` is read from its files by each worker when it builds its contexts, so a
   reload (SIGHUP) serves the files as they are then. Its ``names`` are what SNI matches: a
   crt-list line's filters when it has some, else the certificate's CN and DNS SANs.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoproxy.rules.spec import SampleExpr

# HAProxy's version names, oldest first (``ssl-min-ver``, ``ssl-max-ver``)
TLS_VERSIONS = ("SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """The options of one listening context: ``min_version``/``max_version`` are indexes in
    ``TLS_VERSIONS`` (already narrowed by ``no-tlsv1x``/``force-tlsv1x``)."""

    alpn: tuple[str, ...] | None = None
    min_version: int | None = None
    max_version: int | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    curves: str | None = None
    verify: str | None = None  # none | optional | required (client certificates)
    ca_file: str | None = None
    dh_param_file: str | None = None  # global ssl-dh-param-file (DHE ciphers)
    no_tls_tickets: bool = False
    prefer_client_ciphers: bool = False


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate a bind serves: ``path`` holds the certificate and its chain, and the
    key unless ``key_path`` names the ``.key`` file beside it (HAProxy's
    ``ssl-load-extra-files``). ``excluded`` are a crt-list line's ``!name`` filters;
    ``alpn`` a crt-list line's own ``alpn``."""

    path: str
    names: tuple[str, ...]
    key_path: str | None = None
    excluded: tuple[str, ...] = ()
    alpn: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class BindTls:
    """``bind ... ssl``: its certificates, the first one the default, and its options."""

    certificates: tuple[Certificate, ...]
    options: TlsOptions
    strict_sni: bool = False


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A ``server`` line's TLS parameters (used when the server has ``ssl``, or for checks
    with ``check-ssl``): ``verify`` None means "as ``ssl-server-verify`` says"; ``sni`` a
    constant name (``sni str(NAME)``), ``sni_expr`` any other sample expression, evaluated per
    request; ``check_sni`` a constant name; ``verifyhost`` the name the certificate must hold
    when no SNI is sent (HAProxy checks the SNI's name first)."""

    verify: str | None = None
    ca_file: str | None = None
    crt: str | None = None
    sni: str | None = None
    sni_expr: SampleExpr | None = None
    check_sni: str | None = None
    verifyhost: str | None = None
    alpn: tuple[str, ...] | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    curves: str | None = None
    min_version: int | None = None
    max_version: int | None = None
    flags: tuple[str, ...] = ()  # no-tlsv1x, force-tlsv1x, as read (narrowed at the line's end)
