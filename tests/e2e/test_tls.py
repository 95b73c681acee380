"""TLS termination end to end (``bind ... ssl crt``): SNI's choice of certificate among three,
wildcards, the default certificate, ``strict-sni``, ``crt-list`` filters, ALPN, client
certificates (``verify required``), the ``ssl_*`` fetches and HAProxy's recipes (redirect to
https, X-Forwarded-Proto, HSTS), ``%ft``'s ``~`` in the httplog, and ``mode tcp`` over TLS.
Certificates are made by the test (``tests/support/certs.py``)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.support.certs import Authority, authority, https_request, served_name
from tests.support.http_client import get
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ProcessRegistry
from tests.support.proxy_process import ProxyProcess
from tests.support.tools import tool_missing

pytestmark = pytest.mark.e2e
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Setup:
    proxy: ProxyProcess
    ports: dict[str, int]
    ca: Authority
    client_ca: Authority
    files: Path


@pytest.fixture(scope="module")
def setup(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Setup]:
    files = module_stack.directory / "certs"
    files.mkdir()
    ca, client_ca = authority(), authority("client CA")
    ca.issue("alpha.test", ("alpha.test", "www.alpha.test")).write(files / "alpha.pem")
    ca.issue("beta.test", ("beta.test",)).write(files / "beta.pem")
    ca.issue("*.wild.test", ("*.wild.test",)).write(files / "wild.pem")
    listed = files / "listed"
    listed.mkdir()
    ca.issue("one.test", ("one.test",)).write(listed / "one.pem")
    ca.issue("two.test", ("two.test",)).write(listed / "two.pem")
    (files / "list.txt").write_text(
        "# crt-list: filters replace the certificates' names\n"
        "listed/one.pem [alpn http/1.1] filtered.test *.f.test !no.f.test\n"
        "listed/two.pem\n")
    client_ca.write(files / "client-ca.pem")
    names = ["tls", "strict", "list", "mtls", "plain", "tcp", "dir", "pp", "optional"]
    echo_port, *free = free_ports(len(names) + 1)
    ports = dict(zip(names, free, strict=True))
    echo = process_registry.start(
        "echo", [sys.executable, "-m", "tests.support.echo_backend", str(echo_port)],
        module_stack.directory, session=True)
    wait_for_port(HOST, echo_port, 15.0, echo.is_running)
    client_ca_file = files / "client-ca.pem"
    config = f"""
global
    crt-base {files}
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
    mode http
    option httplog
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_tls
    bind {HOST}:{ports['tls']} ssl crt alpha.pem crt beta.pem crt wild.pem alpn h2,http/1.1
    bind {HOST}:{ports['plain']}
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-SNI %[ssl_fc_sni] if {{ ssl_fc_sni -m found }}
    http-request set-header X-TLS %[ssl_fc_protocol]/%[ssl_fc_alpn]/%[ssl_c_used]
    http-request set-header X-TLS-Log %sslv/%sslc
    redirect scheme https code 301 if !{{ ssl_fc }}
    http-response set-header Strict-Transport-Security "max-age=31536000" if {{ ssl_fc }}
    default_backend app
frontend fe_strict
    bind {HOST}:{ports['strict']} ssl crt alpha.pem crt beta.pem strict-sni
    default_backend app
frontend fe_list
    bind {HOST}:{ports['list']} ssl crt-list {files / 'list.txt'}
    default_backend app
frontend fe_dir
    bind {HOST}:{ports['dir']} ssl crt {listed}
    default_backend app
frontend fe_mtls
    bind {HOST}:{ports['mtls']} ssl crt alpha.pem verify required ca-file {files / 'client-ca.pem'}
    http-request set-header X-Client-DN %[ssl_c_s_dn]
    http-request set-header X-Client-CN %[ssl_c_s_dn(CN)]
    http-request set-header X-Client-Issuer %[ssl_c_i_dn]
    http-request set-header X-Client-Verify %[ssl_c_verify]
    default_backend app
frontend fe_optional
    bind {HOST}:{ports['optional']} ssl crt alpha.pem verify optional ca-file {client_ca_file}
    http-request set-header X-Client-Used %[ssl_c_used]
    default_backend app
frontend fe_pp
    bind {HOST}:{ports['pp']} accept-proxy ssl crt alpha.pem
    http-request set-header X-Src %[src]
    default_backend app
frontend fe_tcp
    mode tcp
    option tcplog
    bind {HOST}:{ports['tcp']} ssl crt beta.pem
    tcp-request content reject unless {{ ssl_fc }} {{ ssl_fc_sni beta.test }}
    default_backend raw
backend app
    server s1 {HOST}:{echo_port}
backend raw
    mode tcp
    server s1 {HOST}:{echo_port}
"""
    try:
        running = module_stack.proxy(config, workers=1)
        yield Setup(running, ports, ca, client_ca, files)
    finally:
        echo.stop()


def _headers(body: bytes) -> dict[str, str]:
    return {name.lower(): value for name, value in json.loads(body)["headers"]}


def test_sni_picks_the_certificate_whose_names_match(setup: Setup) -> None:
    port = setup.ports["tls"]
    assert served_name(HOST, port, "alpha.test")[0] == "alpha.test"
    assert served_name(HOST, port, "www.alpha.test")[0] == "alpha.test"
    assert served_name(HOST, port, "beta.test")[0] == "beta.test"
    assert served_name(HOST, port, "BETA.test")[0] == "beta.test"


def test_a_wildcard_matches_one_label(setup: Setup) -> None:
    port = setup.ports["tls"]
    assert served_name(HOST, port, "api.wild.test")[0] == "*.wild.test"
    assert served_name(HOST, port, "a.b.wild.test")[0] == "alpha.test"  # default
    assert served_name(HOST, port, "wild.test")[0] == "alpha.test"


def test_the_first_certificate_is_the_default(setup: Setup) -> None:
    port = setup.ports["tls"]
    assert served_name(HOST, port, None)[0] == "alpha.test"
    assert served_name(HOST, port, "unknown.test")[0] == "alpha.test"


def test_strict_sni_refuses_a_name_no_certificate_has(setup: Setup) -> None:
    port = setup.ports["strict"]
    assert served_name(HOST, port, "beta.test")[0] == "beta.test"
    for name in ("unknown.test", None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            served_name(HOST, port, name)


def test_crt_list_filters_replace_the_names(setup: Setup) -> None:
    port = setup.ports["list"]
    assert served_name(HOST, port, "filtered.test")[0] == "one.test"
    assert served_name(HOST, port, "x.f.test")[0] == "one.test"
    assert served_name(HOST, port, "two.test")[0] == "two.test"
    assert served_name(HOST, port, "one.test")[0] == "one.test"  # the default: first line
    assert served_name(HOST, port, "no.f.test", )[0] == "one.test"  # default, not the filter
    assert served_name(HOST, port, "filtered.test", ("http/1.1",))[1] == "http/1.1"


def test_crt_directory_loads_every_pem_in_it(setup: Setup) -> None:
    port = setup.ports["dir"]
    assert served_name(HOST, port, "two.test")[0] == "two.test"
    assert served_name(HOST, port, "one.test")[0] == "one.test"


def test_alpn_h2_makes_the_connection_http2_and_http11_stays_http11(setup: Setup) -> None:
    port = setup.ports["tls"]
    assert served_name(HOST, port, "alpha.test", ("h2", "http/1.1"))[1] == "h2"
    assert served_name(HOST, port, "alpha.test", ("http/1.1",))[1] == "http/1.1"
    status, _, body = https_request(port, "/", server_name="alpha.test", alpn=("http/1.1",))
    assert status == 200
    assert _headers(body)["x-tls"].endswith("/http/1.1/0")
    # a browser's way: curl offers h2 and http/1.1 over TLS, and speaks HTTP/2 when chosen
    if shutil.which("curl") is None:
        tool_missing("curl is not installed")
    done = subprocess.run(
        ["curl", "--http2", "-sk", "-D", "-", "--max-time", "10",
         "--resolve", f"alpha.test:{port}:{HOST}", f"https://alpha.test:{port}/h2"],
        capture_output=True, timeout=20, check=False)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), done.stdout[:300] + done.stderr
    assert _headers(body)["x-tls"].endswith("/h2/0")  # ssl_fc_alpn in the rules: h2


def test_recipes_redirect_forwarded_proto_and_hsts(setup: Setup) -> None:
    plain = get(setup.ports["plain"], "/page?x=1", headers={"Host": "shop.test"})
    assert plain.status == 301
    assert plain.header("Location") == "https://shop.test/page?x=1"
    assert plain.header("Strict-Transport-Security") is None
    status, headers, body = https_request(setup.ports["tls"], "/page",
                                          server_name="beta.test")
    assert status == 200
    seen = _headers(body)
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-sni"] == "beta.test"
    assert seen["x-tls"].startswith("TLSv1.")
    assert seen["x-tls-log"].startswith(seen["x-tls"].partition("/")[0] + "/TLS_")
    assert headers["strict-transport-security"] == "max-age=31536000"


def test_client_certificates_are_required_and_read(setup: Setup, tmp_path: Path) -> None:
    port = setup.ports["mtls"]
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_request(port, "/", server_name="alpha.test")
    stranger = authority("stranger").issue("mallory", client=True).write(tmp_path / "m.pem")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_request(port, "/", server_name="alpha.test", client_cert=stranger)
    good = setup.client_ca.issue("alice", client=True).write(tmp_path / "alice.pem")
    status, _, body = https_request(port, "/", server_name="alpha.test", client_cert=good)
    assert status == 200
    seen = _headers(body)
    assert seen["x-client-dn"] == "/C=FR/O=geoproxy tests/CN=alice"
    assert seen["x-client-cn"] == "alice"
    assert seen["x-client-issuer"] == "/CN=client CA"
    assert seen["x-client-verify"] == "0"


def test_the_httplog_marks_a_tls_frontend_with_a_tilde(setup: Setup) -> None:
    https_request(setup.ports["tls"], "/logged-tls", server_name="alpha.test")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in setup.proxy.output().splitlines() if "/logged-tls" in line]
        if lines:
            break
        time.sleep(0.1)
    assert lines and " fe_tls~ app/s1 " in lines[0]


def test_a_failed_handshake_costs_the_worker_nothing(setup: Setup) -> None:
    port = setup.ports["tls"]
    with socket.create_connection((HOST, port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP on a TLS port
        raw.settimeout(5)
        try:
            raw.recv(100)
        except OSError:
            pass
    assert served_name(HOST, port, "beta.test")[0] == "beta.test"
    assert "Traceback" not in setup.proxy.output()
    # one line in the frontend's log, HAProxy's (fe_tls's first bind: number 1)
    deadline = time.monotonic() + 5
    line = re.compile(r"^127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:[\d:.]+\] "
                      r"fe_tls/1: SSL handshake failure$", re.M)
    while not line.search(setup.proxy.output()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert line.search(setup.proxy.output())


def test_mode_tcp_terminates_tls_and_proxies_the_bytes(setup: Setup) -> None:
    status, _, body = https_request(setup.ports["tcp"], "/over-tcp", server_name="beta.test")
    assert status == 200
    assert json.loads(body)["target"] == "/over-tcp"
    # the content rule reads the TLS fetches: another SNI is rejected
    with pytest.raises((ConnectionError, OSError)):
        https_request(setup.ports["tcp"], "/over-tcp", server_name="alpha.test")
    deadline = time.monotonic() + 5
    while " fe_tcp~ raw/s1 " not in setup.proxy.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert " fe_tcp~ raw/s1 " in setup.proxy.output()



def test_a_proxy_header_comes_before_the_handshake(setup: Setup) -> None:
    port = setup.ports["pp"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((HOST, port), timeout=5) as raw:
        raw.sendall(f"PROXY TCP4 198.51.100.7 {HOST} 4321 {port}\r\n".encode())
        with context.wrap_socket(raw, server_hostname="alpha.test") as tls:
            tls.sendall(b"GET /pp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert _headers(answer.partition(b"\r\n\r\n")[2])["x-src"] == "198.51.100.7"


def test_verify_optional_accepts_a_client_without_a_certificate(setup: Setup,
                                                                 tmp_path: Path) -> None:
    port = setup.ports["optional"]
    status, _, body = https_request(port, "/", server_name="alpha.test")
    assert status == 200 and _headers(body)["x-client-used"] == "0"
    good = setup.client_ca.issue("bob", client=True).write(tmp_path / "bob.pem")
    status, _, body = https_request(port, "/", server_name="alpha.test", client_cert=good)
    assert status == 200 and _headers(body)["x-client-used"] == "1"


def test_keep_alive_and_pipelined_requests_over_one_tls_connection(setup: Setup) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((HOST, setup.ports["tls"]), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="beta.test") as tls:
        tls.sendall(request % 1)  # one, then three pipelined in one TLS record
        tls.sendall(request % 2 + request % 3 + (request % 4).replace(
            b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 200") == 4
    for number in (1, 2, 3, 4):
        assert f'"target": "/{number}"'.encode() in answer
