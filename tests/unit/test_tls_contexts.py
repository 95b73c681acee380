"""``geoproxy/runtime/tls.py`` and ``tls_client.py`` without a network: SNI's choice among a
bind's contexts, the TLS 1.3 suites and curves set through ctypes, and the name check of a
server's certificate."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoproxy.config.model_tls import BindTls, Certificate, TlsOptions
from geoproxy.runtime.tls import BindContexts, TlsSetupError, server_context
from geoproxy.runtime.tls_client import _holds
from tests.support.certs import authority


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pems")
    ca = authority()
    return {name: ca.issue(name).write(directory / f"{name}.pem")
            for name in ("first", "second", "wild")}


def _contexts(pems: dict[str, Path], strict: bool = False) -> BindContexts:
    certificates = (
        Certificate(str(pems["first"]), ("first.test",)),
        Certificate(str(pems["second"]), ("second.test", "www.second.test")),
        Certificate(str(pems["wild"]), ("*.wild.test",), excluded=("no.wild.test",)),
    )
    return BindContexts(BindTls(certificates, TlsOptions(), strict))


def test_sni_chooses_exact_names_then_wildcards_else_the_default(pems: dict[str, Path]) -> None:
    contexts = _contexts(pems)
    second = contexts.choose("second.test")
    assert second is not None and second is contexts.choose("WWW.Second.Test.")
    wild = contexts.choose("a.wild.test")
    assert wild is not None and wild not in (second, contexts.default)
    assert contexts.choose("no.wild.test") is None  # excluded: the default serves
    assert contexts.choose("a.b.wild.test") is None  # a wildcard covers one label
    assert contexts.choose("first.test") is contexts.default
    assert contexts.choose(None) is None


def test_ciphersuites_and_curves_are_set_through_ctypes(pems: dict[str, Path]) -> None:
    options = TlsOptions(ciphersuites="TLS_CHACHA20_POLY1305_SHA256", curves="X25519:P-256")
    context = server_context(options, Certificate(str(pems["first"]), ()))
    suites = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3"}
    assert suites == {"TLS_CHACHA20_POLY1305_SHA256"}
    with pytest.raises(TlsSetupError, match="TLS 1.3 cipher suites"):
        server_context(TlsOptions(ciphersuites="BOGUS"), Certificate(str(pems["first"]), ()))
    with pytest.raises(TlsSetupError, match="curves"):
        server_context(TlsOptions(curves="BOGUS"), Certificate(str(pems["first"]), ()))


def test_a_server_certificate_holds_a_name_by_san_else_by_cn() -> None:
    by_san = {"subjectAltName": (("DNS", "*.example.com"), ("DNS", "example.com")),
              "subject": ((("commonName", "other"),),)}
    assert _holds(by_san, "api.example.com") and _holds(by_san, "EXAMPLE.com")
    assert not _holds(by_san, "a.b.example.com") and not _holds(by_san, "other")
    by_cn = {"subject": ((("commonName", "backend.test"),),)}
    assert _holds(by_cn, "backend.test") and not _holds(by_cn, "x.test")


def test_a_bind_whose_files_no_longer_load_refuses_handshakes(tmp_path: Path) -> None:
    import socket
    import ssl

    from geoproxy.config.model import Bind, Location
    from geoproxy.runtime.tls import TlsListeners

    gone = Certificate(str(tmp_path / "gone.pem"), ("gone.test",))
    bind = Bind("127.0.0.1", 8443, Location("f.cfg", 1), tls=BindTls((gone,), TlsOptions()))
    contexts = TlsListeners([bind]).get(("127.0.0.1", 8443))
    assert contexts is not None
    server, client = socket.socketpair()
    tls_server = contexts.default.wrap_socket(server, server_side=True,
                                              do_handshake_on_connect=False)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname, client_context.verify_mode = False, ssl.CERT_NONE
    tls_client = client_context.wrap_socket(client, server_hostname="gone.test",
                                            do_handshake_on_connect=False)
    tls_client.setblocking(False)
    tls_server.setblocking(False)
    with pytest.raises(ssl.SSLError):
        for _ in range(10):
            for side in (tls_client, tls_server):
                try:
                    side.do_handshake()
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
    tls_client.close()
    tls_server.close()
