"""The TLS keywords of ``bind`` and ``global`` (``geoproxy/config/kw_ssl.py``): what they
become, and a differential check that ``haproxy -c`` and geoproxy accept and refuse the same
bind lines (and name the same line), with certificates the test makes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from geoproxy.config import load
from geoproxy.config.model_tls import TLS_VERSIONS
from geoproxy.errors import ConfigError
from tests.support.certs import authority
from tests.support.tools import tool_missing

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)

HEAD = """global
    {global_line}
defaults
    mode http
    timeout client 1s
    timeout server 1s
    timeout connect 1s
frontend web
    bind 127.0.0.1:1 {options}
    default_backend app
backend app
    server s1 127.0.0.1:2
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    ca = authority()
    ca.write(directory / "ca.pem")
    ca.issue("a.test", ("a.test", "*.a.test")).write(directory / "a.pem")
    ca.issue("b.test", ("b.test",)).write(directory / "b.pem")
    ca.issue("pair.test").write_pair(directory / "pair.pem", directory / "pair.pem.key")
    ca.issue("nokey.test").write_pair(directory / "nokey.pem", directory / "elsewhere.key")
    (directory / "certs").mkdir()
    ca.issue("c.test").write(directory / "certs" / "c.pem")
    ca.issue("d.test").write(directory / "certs" / "d.pem")
    (directory / "list.txt").write_text("a.pem [alpn http/1.1] x.test *.y.test !no.y.test\n"
                                        "# comment\n\nb.pem\n")
    return directory


def _write(files: Path, options: str, global_line: str = "log stdout format raw local0") -> Path:
    path = files / "case.cfg"
    path.write_text(HEAD.format(options=options, global_line=global_line))
    return path


def _geoproxy(path: Path) -> tuple[bool, set[int]]:
    try:
        load(str(path), env={})
    except ConfigError as exc:
        return False, {e.location.line for e in exc.errors}
    return True, set()


def _haproxy(path: Path) -> bool:
    assert HAPROXY is not None
    result = subprocess.run([HAPROXY, "-c", "-f", path.name], cwd=path.parent,
                            capture_output=True, text=True, timeout=30, check=False)
    return result.returncode == 0


VALID = [
    "ssl crt a.pem",
    "ssl crt a.pem crt b.pem alpn http/1.1",
    "ssl crt a.pem alpn h2,http/1.1",
    "ssl crt certs",
    "ssl crt-list list.txt",
    "ssl crt pair.pem",
    "ssl crt a.pem ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3",
    "ssl crt a.pem no-tlsv13",
    "ssl crt a.pem force-tlsv12",
    "ssl crt a.pem ciphers ECDHE-ECDSA-AES128-GCM-SHA256 ciphersuites TLS_AES_128_GCM_SHA256",
    "ssl crt a.pem curves X25519:P-256",
    "ssl crt a.pem ecdhe prime256v1",
    "ssl crt a.pem verify optional ca-file ca.pem",
    "ssl crt a.pem verify required ca-file ca.pem",
    "ssl crt a.pem strict-sni no-tls-tickets prefer-client-ciphers",
    "crt a.pem",  # no ssl: HAProxy serves plain TCP, and so does geoproxy (with a warning)
]
INVALID = [
    "ssl",
    "ssl crt missing.pem",
    "ssl crt nokey.pem",
    "ssl crt a.pem verify required",
    "ssl crt a.pem verify maybe",
    "ssl crt a.pem ciphers BOGUS",
    "ssl crt a.pem ciphersuites BOGUS",
    "ssl crt a.pem curves BOGUS",
    "ssl crt a.pem no-tlsv12 no-tlsv13",
    "ssl crt a.pem ssl-min-ver TLSv9",
    "ssl crt a.pem ca-file missing.pem",
]



@pytest.fixture
def needs_haproxy() -> None:
    """The differential tests need haproxy 2.6 (CI installs it: a missing one fails there)."""
    if HAPROXY is None:
        tool_missing("haproxy is not installed")


@pytest.mark.usefixtures("needs_haproxy")
@pytest.mark.parametrize("options", VALID + INVALID)
def test_geoproxy_and_haproxy_agree_on_each_bind_line(files: Path, options: str) -> None:
    path = _write(files, options)
    valid, lines = _geoproxy(path)
    assert valid == _haproxy(path) == (options in VALID)
    if not valid:
        assert lines == {9}  # the bind's line


@pytest.mark.usefixtures("needs_haproxy")
@pytest.mark.parametrize(("global_line", "valid"), [
    ("ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets", True),
    ("ssl-default-bind-options no-sslv3 no-tlsv10 no-tlsv11", True),
    ("ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256", True),
    ("ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", True),
    ("ssl-default-bind-options bogus", False),
    ("crt-base .", True),
])
def test_geoproxy_and_haproxy_agree_on_the_global_tls_keywords(
        files: Path, global_line: str, valid: bool) -> None:
    path = _write(files, "ssl crt a.pem", global_line)
    assert _geoproxy(path)[0] == _haproxy(path) == valid


def test_global_defaults_apply_to_binds_that_follow(files: Path) -> None:
    path = _write(files, "ssl crt a.pem",
                  "ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets\n"
                  "    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256")
    tls = load(str(path), env={}).frontends[0].binds[0].tls
    assert tls is not None
    assert TLS_VERSIONS[tls.options.min_version or 0] == "TLSv1.3"
    assert tls.options.no_tls_tickets
    assert tls.options.ciphersuites == "TLS_AES_128_GCM_SHA256"


def test_version_flags_narrow_the_range(files: Path) -> None:
    for options, low, high in (("no-tlsv13", "TLSv1.2", "TLSv1.2"),
                               ("force-tlsv13", "TLSv1.3", "TLSv1.3"),
                               ("", "TLSv1.2", "TLSv1.3"),
                               ("ssl-min-ver TLSv1.1 no-tlsv12", "TLSv1.1", "TLSv1.3")):
        tls = load(str(_write(files, f"ssl crt a.pem {options}")), env={}).frontends[0].binds[0].tls
        assert tls is not None
        assert (TLS_VERSIONS[tls.options.min_version or 0],
                TLS_VERSIONS[tls.options.max_version or 0]) == (low, high), options


def test_certificates_their_names_and_crt_list_filters(files: Path) -> None:
    config = load(str(_write(files, "ssl crt a.pem crt certs crt-list list.txt")), env={})
    tls = config.frontends[0].binds[0].tls
    assert tls is not None
    names = [(Path(c.path).name, c.names, c.excluded, c.alpn) for c in tls.certificates]
    assert names == [
        ("a.pem", ("a.test", "*.a.test"), (), None),
        ("c.pem", ("c.test",), (), None),
        ("d.pem", ("d.test",), (), None),
        ("a.pem", ("x.test", "*.y.test"), ("no.y.test",), ("http/1.1",)),
        ("b.pem", ("b.test",), (), None),
    ]


def test_alpn_is_advertised_as_written_h2_included(files: Path) -> None:
    config = load(str(_write(files, "ssl crt a.pem alpn h2,http/1.1")), env={})
    tls = config.frontends[0].binds[0].tls
    assert tls is not None and tls.options.alpn == ("h2", "http/1.1")
    assert not any("alpn" in str(w) for w in config.warnings)


@pytest.mark.parametrize(("options", "message"), [
    ("ssl crt a.pem crl-file ca.pem", "'crl-file' is not supported by geoproxy"),
    ("ssl crt a.pem npn http/1.1", "'npn' is not supported by geoproxy"),
    ("ssl crt a.pem allow-0rtt", "'allow-0rtt' is not supported by geoproxy"),
])
def test_what_geoproxy_cannot_honour_is_refused_with_file_line_and_keyword(
        files: Path, options: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(str(_write(files, options)), env={})
    text = str(caught.value)
    assert message in text and "case.cfg:9" in text


def test_a_crt_list_line_option_other_than_alpn_is_refused(files: Path) -> None:
    (files / "bad-list.txt").write_text("a.pem [ssl-min-ver TLSv1.3] a.test\n")
    with pytest.raises(ConfigError) as caught:
        load(str(_write(files, "ssl crt-list bad-list.txt")), env={})
    assert "bad-list.txt:1: 'ssl-min-ver' per crt-list line is not supported" in str(caught.value)


SERVER_HEAD = """global
    {global_line}
defaults
    mode http
    timeout client 1s
    timeout server 1s
    timeout connect 1s
frontend web
    bind 127.0.0.1:1
    default_backend app
backend app
    server s1 127.0.0.1:2 {options}
"""
SERVER_VALID = [
    "ssl verify none",
    "ssl verify required ca-file ca.pem sni str(a.test)",
    "ssl verify required ca-file ca.pem sni req.hdr(host)",
    "ssl ca-file ca.pem verifyhost a.test check",
    "ssl verify none crt a.pem alpn http/1.1",
    "ssl verify none ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3",
    "ssl verify none no-tlsv13",
    "ssl verify none check-ssl check-sni a.test check",
    "verify none ca-file ca.pem",  # TLS keywords without ssl: plain TCP, as in HAProxy
]
SERVER_INVALID = [
    "ssl",  # verify required by default, and no ca-file
    "ssl verify maybe",
    "ssl verify none ciphers BOGUS",
    "ssl verify required ca-file missing.pem",
    "check-ssl check",  # checks over TLS verify too
]


@pytest.mark.usefixtures("needs_haproxy")
@pytest.mark.parametrize("options", SERVER_VALID + SERVER_INVALID)
def test_geoproxy_and_haproxy_agree_on_each_server_line(files: Path, options: str) -> None:
    path = files / "server.cfg"
    path.write_text(SERVER_HEAD.format(options=options, global_line="maxconn 100"))
    valid, lines = _geoproxy(path)
    assert valid == _haproxy(path) == (options in SERVER_VALID)
    if not valid:
        assert lines == {12}


@pytest.mark.usefixtures("needs_haproxy")
@pytest.mark.parametrize(("global_line", "options", "valid"), [
    ("ssl-server-verify none", "ssl", True),
    ("ssl-default-server-options no-sslv3 no-tlsv10 no-tlsv11 no-tls-tickets",
     "ssl verify none", True),
    ("ssl-default-server-ciphers ECDHE-ECDSA-AES128-GCM-SHA256", "ssl verify none", True),
])
def test_geoproxy_and_haproxy_agree_on_the_global_server_tls_keywords(
        files: Path, global_line: str, options: str, valid: bool) -> None:
    path = files / "server.cfg"
    path.write_text(SERVER_HEAD.format(options=options, global_line=global_line))
    assert _geoproxy(path)[0] == _haproxy(path) == valid


def test_an_sni_is_a_constant_or_an_expression_evaluated_per_request(files: Path) -> None:
    path = files / "server.cfg"
    for options, constant, expression in (("ssl verify none sni str(a.test)", "a.test", None),
                                          ("ssl verify none sni req.hdr(host),lower", None,
                                           "req.hdr")):
        path.write_text(SERVER_HEAD.format(options=options, global_line="maxconn 100"))
        tls = load(str(path), env={}).backends[0].servers[0].tls
        assert tls.sni == constant
        assert (tls.sni_expr.fetch.name if tls.sni_expr else None) == expression
    path.write_text(SERVER_HEAD.format(options="ssl verify none sni nosuchfetch",
                                       global_line="maxconn 100"))
    with pytest.raises(ConfigError) as caught:
        load(str(path), env={})
    assert "server.cfg:12" in str(caught.value) and "'sni'" in str(caught.value)
