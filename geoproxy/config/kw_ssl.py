"""TLS keywords: a ``bind`` line's ``ssl`` options, ``crt-list`` files, and the ``global``
keywords ``crt-base``, ``ca-base``, ``ssl-default-bind-options|ciphers|ciphersuites|curves``.

Rules (HAProxy 2.6's meaning; what geoproxy cannot honour is refused, never ignored):
1. ``crt FILE`` loads a PEM holding the certificate, its chain and its key (or the key from
   ``FILE.key``, as HAProxy's default ``ssl-load-extra-files all`` does); ``crt DIR`` loads every
   file of the directory, in name order, but dotfiles and ``.key``/``.ocsp``/``.issuer``/``.sctl``
   files. Relative paths start from ``crt-base`` (``ca-base`` for ``ca-file``), else from the
   configuration's directory. Each certificate is loaded at parse time, so that a broken one is
   an error naming the bind's line; the workers load it again when they build their contexts.
2. ``crt-list FILE``: one certificate a line, ``PATH [[options]] [[!]filter...]``; the filters
   replace the certificate's own names for SNI. A line's options may only be ``alpn``: OpenSSL
   switches a connection's certificate and ALPN on SNI, not its versions, ciphers or
   verification (HAProxy switches them with calls Python's ``ssl`` does not expose).
3. The first certificate of a bind is its default (no SNI, or no name matched); with
   ``strict-sni`` such a handshake is refused.
4. Versions: ``ssl-default-bind-options`` flags add to the bind's, its bounds hold unless the
   bind sets its own; the range is then narrowed as HAProxy does (``no-tlsv1x``, ``force-*``:
   a hole in the enabled versions disables what is above it, with a warning). HAProxy's
   default minimum is TLSv1.2.
5. ``alpn`` is advertised as written: ``h2`` chosen by a client makes the connection an
   HTTP/2 one (``runtime/h2_connection.py``), ``http/1.1`` or no ALPN an HTTP/1.1 one.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from geoproxy.config.context import Line
from geoproxy.config.model_tls import TLS_VERSIONS, BindTls, Certificate, TlsOptions
from geoproxy.config.tls_draft import TlsGlobalsDraft

# bind options geoproxy reads, with their argument count
BIND_OPTIONS: dict[str, int] = {
    "ssl": 0, "crt": 1, "crt-list": 1, "ca-file": 1, "verify": 1, "alpn": 1, "ciphers": 1,
    "ciphersuites": 1, "curves": 1, "ecdhe": 1, "ssl-min-ver": 1, "ssl-max-ver": 1,
    "strict-sni": 0, "no-tls-tickets": 0, "prefer-client-ciphers": 0,
    **dict.fromkeys(("no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13",
                     "force-sslv3", "force-tlsv10", "force-tlsv11", "force-tlsv12",
                     "force-tlsv13"), 0),
}
# bind options HAProxy knows and geoproxy refuses, with the reason
REFUSED_BIND_OPTIONS: dict[str, str] = {
    "crl-file": "certificate revocation lists are not checked by geoproxy",
    "ca-ignore-err": "geoproxy refuses every client certificate that does not verify",
    "crt-ignore-err": "geoproxy refuses every client certificate that does not verify",
    "ca-verify-file": "geoproxy verifies client certificates against 'ca-file' only",
    "npn": "NPN is obsolete and Python's ssl does not offer it; use 'alpn'",
    "generate-certificates": "geoproxy does not mint certificates on the fly",
    "ca-sign-file": "geoproxy does not mint certificates on the fly",
    "ca-sign-pass": "geoproxy does not mint certificates on the fly",
    "allow-0rtt": "geoproxy does not accept TLS 1.3 early data",
    "sigalgs": "geoproxy does not set signature algorithms",
    "client-sigalgs": "geoproxy does not set signature algorithms",
    "no-ca-names": "geoproxy always sends the CA names of 'ca-file'",
    "ocsp-update": "geoproxy does not staple OCSP responses",
    "quic-cc-algo": "geoproxy does not speak QUIC",
    "tls-ticket-keys": "geoproxy does not share TLS ticket keys",
}
_VERSION_FLAGS = {"no-sslv3": 0, "no-tlsv10": 1, "no-tlsv11": 2, "no-tlsv12": 3,
                  "no-tlsv13": 4}
_FORCE_FLAGS = {"force-sslv3": 0, "force-tlsv10": 1, "force-tlsv11": 2, "force-tlsv12": 3,
                "force-tlsv13": 4}
DEFAULT_MIN_VERSION = TLS_VERSIONS.index("TLSv1.2")  # HAProxy 2.2+
_EXTRA_FILES = (".key", ".ocsp", ".issuer", ".sctl")
_VERIFY = ("none", "optional", "required")
# Python's ssl has no TLS 1.0/1.1 ciphers at OpenSSL's default security level, and no SSLv3
_SSLV3 = TLS_VERSIONS.index("SSLv3")


class TlsConfigError(Exception):
    """A TLS setting is wrong; the message is HAProxy's sentence or geoproxy's."""


@dataclass(slots=True)
class BindTlsDraft:
    """A bind line's TLS options as read, before the global defaults are applied."""

    ssl: bool = False
    certificates: list[Certificate] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    min_version: int | None = None
    max_version: int | None = None
    alpn: tuple[str, ...] | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    curves: str | None = None
    verify: str | None = None
    ca_file: str | None = None
    strict_sni: bool = False
    no_tls_tickets: bool = False
    prefer_client_ciphers: bool = False
    seen: list[str] = field(default_factory=list)


def is_tls_bind_option(option: str) -> bool:
    return option in BIND_OPTIONS or option in REFUSED_BIND_OPTIONS


def bind_option(draft: BindTlsDraft, line: Line, index: int) -> int:
    """Read the TLS option at ``line.args[index]``; returns the index after it."""
    option = line.args[index]
    where = f"'bind {line.arg(0)}' : '{option}'"
    if option in REFUSED_BIND_OPTIONS:
        line.fail(f"{where} is not supported by geoproxy: {REFUSED_BIND_OPTIONS[option]}.")
    arity = BIND_OPTIONS[option]
    value = line.arg(index + 1) if arity else ""
    if arity and not value:
        line.fail(f"{where} : missing argument.")
    try:
        _READERS[option](draft, line, value)
    except TlsConfigError as exc:
        line.fail(f"{where} : {exc}")
    draft.seen.append(option)
    return index + 1 + arity


def finish_bind(draft: BindTlsDraft, line: Line) -> BindTls | None:
    """The bind's ``BindTls`` with the global defaults applied (rule 4); None without ``ssl``."""
    where = f"'bind {line.arg(0)}'"
    if not draft.ssl:
        if draft.seen:  # HAProxy accepts them, and serves plain TCP: so does geoproxy
            line.warn(f"{where} : '{draft.seen[0]}' has no effect without 'ssl' on the same "
                      "bind line: this bind serves no TLS.")
        return None
    if not draft.certificates:
        line.fail(f"{where} : no SSL certificate specified for this bind (use 'crt').")
    defaults = line.tls
    if draft.verify in ("optional", "required") and draft.ca_file is None:
        line.fail(f"{where} : 'verify {draft.verify}' : verify is enabled but no CA file "
                  "specified (use 'ca-file').")
    low, high = _version_range(draft, defaults, line)
    options = TlsOptions(
        alpn=draft.alpn,
        min_version=low,
        max_version=high,
        ciphers=draft.ciphers or defaults.bind_ciphers,
        ciphersuites=draft.ciphersuites or defaults.bind_ciphersuites,
        curves=draft.curves or defaults.bind_curves,
        verify=draft.verify,
        ca_file=draft.ca_file,
        dh_param_file=defaults.dh_param_file,
        no_tls_tickets=draft.no_tls_tickets or "no-tls-tickets" in defaults.bind_flags,
        prefer_client_ciphers=(draft.prefer_client_ciphers
                               or "prefer-client-ciphers" in defaults.bind_flags),
    )
    bind_tls = BindTls(tuple(draft.certificates), options, draft.strict_sni)
    error = _check_options(bind_tls)
    if error is not None:
        line.fail(f"{where} : {error}")
    return bind_tls


def _version_range(draft: BindTlsDraft, defaults: TlsGlobalsDraft,
                   line: Line) -> tuple[int, int]:
    flags = draft.flags | defaults.bind_flags
    low = draft.min_version if draft.min_version is not None else defaults.bind_min
    high = draft.max_version if draft.max_version is not None else defaults.bind_max
    return narrow(flags, low, high, line, f"'bind {line.arg(0)}'")


def narrow(flags: set[str], low: int | None, high: int | None, line: Line,
           where: str) -> tuple[int, int]:
    """The enabled range of versions, as HAProxy narrows it (rule 4)."""
    versions = {name for name in flags if name in _VERSION_FLAGS}
    if versions and (low is not None or high is not None):
        line.warn(f"{where} : no-sslv3/no-tlsv1x are ignored. Use only "
                  "'ssl-min-ver' and 'ssl-max-ver' to fix.")
        flags = flags - versions
    forced = [v for name, v in _FORCE_FLAGS.items() if name in flags]
    if forced:
        low = high = max(forced)
    low = DEFAULT_MIN_VERSION if low is None else low
    high = len(TLS_VERSIONS) - 1 if high is None else high
    enabled = [v for v in range(low, high + 1)
               if not any(_VERSION_FLAGS[f] == v for f in flags if f in _VERSION_FLAGS)]
    if not enabled:
        line.fail(f"{where} : all SSL/TLS versions are disabled.")
    first = last = enabled[0]
    while last + 1 in enabled:
        last += 1
    if last != enabled[-1]:
        line.warn(f"{where} : protocols are not contiguous: {TLS_VERSIONS[last + 1]} and "
                  f"above are disabled, as HAProxy does.")
    if first == _SSLV3:
        line.fail(f"{where} : SSLv3 is not supported by geoproxy (Python's ssl has none).")
    return first, last


def _check_options(bind_tls: BindTls) -> str | None:
    """Build one context with these options, so that a wrong cipher string or curve list is
    an error at parse time, not in a worker: the error, or None."""
    from geoproxy.runtime.tls import TlsSetupError, server_context

    try:
        server_context(bind_tls.options, bind_tls.certificates[0])
    except TlsSetupError as exc:
        return f"{exc}."
    return None


# -- one reader per option ---------------------------------------------------------------------

def _ssl(draft: BindTlsDraft, line: Line, value: str) -> None:
    draft.ssl = True


def _crt(draft: BindTlsDraft, line: Line, value: str) -> None:
    path = resolve(value, line.tls.crt_base, line.config_dir)
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path)
                       if not n.startswith(".") and not n.endswith(_EXTRA_FILES)
                       and os.path.isfile(os.path.join(path, n)))
        if not names:
            raise TlsConfigError(f"unable to load SSL certificate from directory '{path}': "
                                 "it holds no certificate file.")
        for name in names:
            draft.certificates.append(load_certificate(os.path.join(path, name)))
        return
    draft.certificates.append(load_certificate(path))


def _crt_list(draft: BindTlsDraft, line: Line, value: str) -> None:
    path = resolve(value, None, line.config_dir)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise TlsConfigError(f"unable to read crt-list '{path}': {exc.strerror}.") from exc
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            draft.certificates.append(_crt_list_line(text, line))
        except TlsConfigError as exc:
            raise TlsConfigError(f"{path}:{number}: {exc}") from exc


def _crt_list_line(text: str, line: Line) -> Certificate:
    """``PATH [[options]] [[!]filter...]`` (rule 2)."""
    path_text, _, rest = text.partition(" ")
    rest = rest.strip()
    options: list[str] = []
    if rest.startswith("["):
        inside, closing, rest = rest[1:].partition("]")
        if not closing:
            raise TlsConfigError("missing ']' after the line's options.")
        options = inside.split()
    alpn: tuple[str, ...] | None = None
    index = 0
    while index < len(options):
        option = options[index]
        if option != "alpn":
            raise TlsConfigError(
                f"'{option}' per crt-list line is not supported by geoproxy (OpenSSL keeps "
                "a connection's versions, ciphers and verification when SNI switches its "
                "certificate); set it on the bind line. Only 'alpn' is read per line.")
        if index + 1 >= len(options):
            raise TlsConfigError("'alpn' : missing argument.")
        alpn = _alpn_list(options[index + 1])
        index += 2
    certificate = load_certificate(resolve(path_text, line.tls.crt_base, line.config_dir))
    filters = rest.split()
    names = tuple(f.lower() for f in filters if not f.startswith("!"))
    excluded = tuple(f[1:].lower() for f in filters if f.startswith("!"))
    return Certificate(certificate.path, names or certificate.names, certificate.key_path,
                       excluded, alpn)


def _ca_file(draft: BindTlsDraft, line: Line, value: str) -> None:
    path = resolve(value, line.tls.ca_base, line.config_dir)
    check_ca_file(path)
    draft.ca_file = path


def _verify(draft: BindTlsDraft, line: Line, value: str) -> None:
    if value not in _VERIFY:
        raise TlsConfigError(f"verify can be 'none', 'optional' or 'required' (got '{value}').")
    draft.verify = value


def _alpn(draft: BindTlsDraft, line: Line, value: str) -> None:
    draft.alpn = _alpn_list(value)


def _alpn_list(value: str) -> tuple[str, ...]:
    names = tuple(value.split(","))
    if any(not name or len(name) > 255 for name in names):
        raise TlsConfigError(f"invalid protocol list '{value}'.")
    return names


def _version(field_name: str) -> Callable[[BindTlsDraft, Line, str], None]:
    def read(draft: BindTlsDraft, line: Line, value: str) -> None:
        setattr(draft, field_name, version_index(value))

    return read


def version_index(value: str) -> int:
    if value not in TLS_VERSIONS:
        raise TlsConfigError(f"unknown version '{value}' (expects one of "
                             f"{', '.join(TLS_VERSIONS)}).")
    return TLS_VERSIONS.index(value)


def _text(field_name: str) -> Callable[[BindTlsDraft, Line, str], None]:
    def read(draft: BindTlsDraft, line: Line, value: str) -> None:
        setattr(draft, field_name, value)

    return read


def _flag_reader(name: str) -> Callable[[BindTlsDraft, Line, str], None]:
    def read(draft: BindTlsDraft, line: Line, value: str) -> None:
        if name == "strict-sni":
            draft.strict_sni = True
        elif name == "no-tls-tickets":
            draft.no_tls_tickets = True
        elif name == "prefer-client-ciphers":
            draft.prefer_client_ciphers = True
        else:
            draft.flags.add(name)

    return read


_READERS: dict[str, Callable[[BindTlsDraft, Line, str], None]] = {
    "ssl": _ssl, "crt": _crt, "crt-list": _crt_list, "ca-file": _ca_file, "verify": _verify,
    "alpn": _alpn, "ciphers": _text("ciphers"), "ciphersuites": _text("ciphersuites"),
    "curves": _text("curves"), "ecdhe": _text("curves"),
    "ssl-min-ver": _version("min_version"), "ssl-max-ver": _version("max_version"),
    **{name: _flag_reader(name) for name in (
        "strict-sni", "no-tls-tickets", "prefer-client-ciphers", *_VERSION_FLAGS,
        *_FORCE_FLAGS)},
}


# -- files ---------------------------------------------------------------------------------------

def resolve(path: str, base: str | None, config_dir: str) -> str:
    """``path`` from ``base`` (``crt-base``/``ca-base``), else from the configuration's
    directory (geoproxy's ``default-path config``)."""
    if os.path.isabs(path):
        return path
    if base is not None:
        path = os.path.join(base, path)
    return os.path.abspath(os.path.join(config_dir, path))


def load_certificate(path: str) -> Certificate:
    """Load ``path`` as HAProxy does (rule 1); raises ``TlsConfigError``."""
    try:
        with open(path, "rb") as handle:
            pem = handle.read()
    except OSError as exc:
        raise TlsConfigError(f"unable to stat SSL certificate from file '{path}' : "
                             f"{exc.strerror}.") from exc
    key_path = None
    if b"PRIVATE KEY-----" not in pem:
        key_path = path + ".key"
        if not os.path.isfile(key_path):
            raise TlsConfigError(f"unable to load SSL private key from PEM file '{path}' "
                                 f"(nor from '{key_path}').")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(path, key_path)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"unable to load SSL certificate from PEM file '{path}' "
                             f"({exc}).") from exc
    return Certificate(path, certificate_names(pem), key_path)


def certificate_names(pem: bytes) -> tuple[str, ...]:
    """The DNS names of the first certificate of ``pem``: its SANs, then its CN, lowercased
    (HAProxy indexes both for SNI)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    start = pem.find(b"-----BEGIN CERTIFICATE-----")
    end = pem.find(b"-----END CERTIFICATE-----", start)
    if start < 0 or end < 0:
        raise TlsConfigError("no certificate in the PEM file.")
    certificate = x509.load_pem_x509_certificate(pem[start:end + 25])
    names: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names.extend(str(n).lower() for n in san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        name = (value.decode() if isinstance(value, bytes) else value).lower()
        if name not in names:
            names.append(name)
    return tuple(names)


def check_ca_file(path: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"unable to load CA file '{path}' ({exc}).") from exc


# -- global keywords ---------------------------------------------------------------------------

def parse_global(tls: TlsGlobalsDraft, line: Line) -> None:
    """``crt-base``, ``ca-base``, ``ssl-default-bind-*`` and ``ssl-server-verify``."""
    keyword = line.keyword
    if keyword in ("crt-base", "ca-base", "ssl-default-bind-ciphers",
                   "ssl-default-bind-ciphersuites", "ssl-default-bind-curves",
                   "ssl-server-verify", "ssl-dh-param-file", "ssl-default-server-ciphers",
                   "ssl-default-server-ciphersuites"):
        if not line.arg(0):
            line.fail(f"'{keyword}' expects a single argument.")
        line.at_most(1)
    value = line.arg(0)
    if keyword == "crt-base":
        tls.crt_base = resolve(value, None, line.config_dir)
    elif keyword == "ca-base":
        tls.ca_base = resolve(value, None, line.config_dir)
    elif keyword == "ssl-default-bind-ciphers":
        tls.bind_ciphers = value
    elif keyword == "ssl-default-bind-ciphersuites":
        tls.bind_ciphersuites = value
    elif keyword == "ssl-default-bind-curves":
        tls.bind_curves = value
    elif keyword == "ssl-default-server-ciphers":
        tls.server_ciphers = value
    elif keyword == "ssl-default-server-ciphersuites":
        tls.server_ciphersuites = value
    elif keyword == "ssl-default-server-options":
        _default_server_options(tls, line)
    elif keyword == "ssl-dh-param-file":
        tls.dh_param_file = resolve(value, None, line.config_dir)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_dh_params(tls.dh_param_file)
        except (ssl.SSLError, OSError) as exc:
            line.fail(f"'{keyword}' : unable to load DH parameters from '{value}' ({exc}).")
    elif keyword == "ssl-server-verify":
        if value not in ("none", "required"):
            line.fail("'ssl-server-verify' expects 'none' or 'required' as argument.")
        tls.server_verify = value
    else:
        _default_bind_options(tls, line)


def _default_bind_options(tls: TlsGlobalsDraft, line: Line) -> None:
    args, index = line.args, 0
    while index < len(args):
        option = args[index]
        try:
            if option in ("ssl-min-ver", "ssl-max-ver"):
                version = version_index(line.arg(index + 1))
                if option == "ssl-min-ver":
                    tls.bind_min = version
                else:
                    tls.bind_max = version
                index += 2
                continue
        except TlsConfigError as exc:
            line.fail(f"'{line.keyword}' : '{option}' : {exc}")
        if option in _VERSION_FLAGS or option in _FORCE_FLAGS or option in (
                "no-tls-tickets", "prefer-client-ciphers"):
            tls.bind_flags.add(option)
        elif option in REFUSED_BIND_OPTIONS:
            line.fail(f"'{line.keyword}' : '{option}' is not supported by geoproxy: "
                      f"{REFUSED_BIND_OPTIONS[option]}.")
        else:
            line.fail(f"'{line.keyword}' : unknown or unsupported option '{option}'.")
        index += 1


GLOBAL_TLS_KEYWORDS = ("crt-base", "ca-base", "ssl-default-bind-options",
                       "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites",
                       "ssl-default-bind-curves", "ssl-server-verify", "ssl-dh-param-file",
                       "ssl-default-server-options", "ssl-default-server-ciphers",
                       "ssl-default-server-ciphersuites")


def _default_server_options(tls: TlsGlobalsDraft, line: Line) -> None:
    """``ssl-default-server-options``: versions (``ssl-min-ver``, ``ssl-max-ver``,
    ``no-sslv3``, ``no-tlsv1x``, ``force-tlsv1x``) and ``no-ssl-reuse``/``no-tls-tickets``
    (sessions to servers are never resumed)."""
    args, index = line.args, 0
    while index < len(args):
        option = args[index]
        try:
            if option in ("ssl-min-ver", "ssl-max-ver"):
                version = version_index(line.arg(index + 1))
                if option == "ssl-min-ver":
                    tls.server_min = version
                else:
                    tls.server_max = version
                index += 2
                continue
        except TlsConfigError as exc:
            line.fail(f"'{line.keyword}' : '{option}' : {exc}")
        if option in _FORCE_FLAGS or option in _VERSION_FLAGS:
            tls.server_flags.add(option)
        elif option not in ("no-ssl-reuse", "no-tls-tickets"):
            line.fail(f"'{line.keyword}' : unknown or unsupported option '{option}' (geoproxy "
                      "reads ssl-min-ver, ssl-max-ver, no-sslv3, no-tlsv1x, force-tlsv1x, "
                      "no-ssl-reuse and no-tls-tickets here).")
        index += 1
