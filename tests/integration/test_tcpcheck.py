"""The tcp-check engine (geoproxy.health.tcpcheck) against real sockets: a real redis-server for
``option redis-check`` and the operators' usual Redis ruleset, and scripted servers that speak
just enough MySQL, PostgreSQL, LDAP, SMTP and TLS for HAProxy's protocol checks (manual 4.2,
``option ...-check``; HAProxy's tcpcheck.c for the bytes and the verdicts).
"""

from __future__ import annotations

import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from geoproxy.config import parse_text
from geoproxy.health.checker import check_target
from geoproxy.health.probe import CheckResult, run_check
from tests.support.ports import free_port, wait_for_port
from tests.support.tools import tool_missing

Dialogue = Callable[[socket.socket], None]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    dialogue: Dialogue
    received: list[bytes]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            self.server.dialogue(self.request)
        except OSError:
            pass


@pytest.fixture
def scripted() -> Iterator[Callable[[Dialogue], int]]:
    servers: list[_Server] = []

    def start(dialogue: Dialogue) -> int:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.dialogue = dialogue
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        tool_missing("redis-server is not installed")
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir",
         str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 10.0, lambda: process.poll() is None)
        yield port
    finally:
        process.terminate()
        process.wait(5)


def check(port: int, body: str, inter: str = "1s") -> CheckResult:
    config = parse_text(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\nfrontend f\n    bind 127.0.0.1:1\n    default_backend b\n"
        f"backend b\n{body}    server s 127.0.0.1:{port} check inter {inter}\n",
        "t.cfg", env={})
    backend = config.backends[0]
    return run_check(check_target(backend, backend.servers[0]))


def test_redis_check_passes_on_a_real_redis(redis_port: int) -> None:
    result = check(redis_port, "    option redis-check\n")
    assert (result.passed, result.code) == (True, "L7OK")
    assert result.description == 'Layer7 check passed, info: "Redis server is ok"'


def test_the_usual_master_check_ruleset_runs_step_by_step(redis_port: int) -> None:
    ruleset = ("    option tcp-check\n    tcp-check connect\n    tcp-check send PING\\r\\n\n"
               "    tcp-check expect string +PONG\n"
               "    tcp-check send info\\ replication\\r\\n\n"
               "    tcp-check expect string role:master\n"
               "    tcp-check send QUIT\\r\\n\n    tcp-check expect string +OK\n")
    assert check(redis_port, ruleset).code == "L7OK"
    slave = ruleset.replace("role:master", "role:slave")
    result = check(redis_port, slave, inter="300ms")
    assert (result.passed, result.code) == (False, "L7TOUT")
    assert result.description == ("Layer7 timeout, info: \" at step 5 of tcp-check (expect "
                                  "string 'role:slave')\"")


def test_an_unwanted_answer_fails_at_its_step_with_haproxys_words(redis_port: int) -> None:
    result = check(redis_port, "    option tcp-check\n    tcp-check send PING\\r\\n\n"
                   "    tcp-check expect ! string +PONG comment no-pong\n")
    assert (result.passed, result.code) == (False, "L7RSP")
    assert result.description == ("Layer7 invalid response, info: \"TCPCHK matched unwanted "
                                  "content '+PONG' at step 2 comment: no-pong\"")


def test_a_closed_port_is_a_layer4_failure() -> None:
    result = check(free_port(), "    option redis-check\n")
    assert (result.passed, result.code) == (False, "L4CON")


def test_mysql_check_reads_the_handshake_then_the_ok(scripted: Callable[[Dialogue], int]
                                                      ) -> None:
    hello = b"\x0a8.0.36\x00" + bytes(40)
    logins: list[bytes] = []

    def server(sock: socket.socket) -> None:
        sock.sendall(len(hello).to_bytes(3, "little") + b"\x00" + hello)
        logins.append(sock.recv(4096))
        sock.sendall(b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00")

    result = check(scripted(server), "    option mysql-check user haproxy\n")
    assert (result.passed, result.code, result.description) == (
        True, "L7OK", 'Layer7 check passed, info: "8.0.36"')
    assert b"haproxy\x00" in logins[0]

    def refusing(sock: socket.socket) -> None:
        sock.sendall(len(hello).to_bytes(3, "little") + b"\x00" + hello)
        sock.recv(4096)
        error = b"\xff\x15\x04#28000Access denied"
        sock.sendall(len(error).to_bytes(3, "little") + b"\x02" + error)

    result = check(scripted(refusing), "    option mysql-check user haproxy\n")
    assert (result.passed, result.code) == (False, "L7STS")
    assert "Access denied" in result.description


def test_pgsql_check_accepts_an_authentication_request(scripted: Callable[[Dialogue], int]
                                                       ) -> None:
    def server(sock: socket.socket) -> None:
        sock.recv(4096)
        sock.sendall(b"R\x00\x00\x00\x08\x00\x00\x00\x00")  # AuthenticationOk

    result = check(scripted(server), "    option pgsql-check user haproxy\n")
    assert result.description == 'Layer7 check passed, info: "PostgreSQL server is ok"'

    def refusing(sock: socket.socket) -> None:
        sock.recv(4096)
        sock.sendall(b"E\x00\x00\x00\x20SFATAL\x00Mno such role\x00\x00")

    result = check(scripted(refusing), "    option pgsql-check user haproxy\n")
    assert (result.passed, result.code) == (False, "L7RSP")
    assert "no such role" in result.description


def test_ldap_check_wants_a_successful_bind(scripted: Callable[[Dialogue], int]) -> None:
    def server(code: int) -> Dialogue:
        def talk(sock: socket.socket) -> None:
            sock.recv(4096)
            sock.sendall(bytes([0x30, 0x0C, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0A, 0x01, code,
                                0x04, 0x00, 0x04, 0x00]))
        return talk

    assert check(scripted(server(0)), "    option ldap-check\n").code == "L7OK"
    failed = check(scripted(server(49)), "    option ldap-check\n")
    assert (failed.passed, failed.code) == (False, "L7STS")


def test_smtpchk_reads_the_banner_and_the_helo_answer(scripted: Callable[[Dialogue], int]
                                                      ) -> None:
    heard: list[bytes] = []

    def server(sock: socket.socket) -> None:
        sock.sendall(b"220 mail.test ESMTP ready\r\n")
        heard.append(sock.recv(4096))
        sock.sendall(b"250 mail.test greets you\r\n")

    result = check(scripted(server), "    option smtpchk HELO probe.test\n")
    assert result.description == 'Layer7 check passed, info: "mail.test greets you"'
    assert heard == [b"HELO probe.test\r\n"]


def test_ssl_hello_chk_wants_a_tls_record_back(scripted: Callable[[Dialogue], int]) -> None:
    hellos: list[bytes] = []

    def server(sock: socket.socket) -> None:
        hellos.append(sock.recv(4096))
        sock.sendall(b"\x15\x03\x00\x00\x02\x02\x28")  # an alert is still TLS

    result = check(scripted(server), "    option ssl-hello-chk\n")
    assert (result.passed, result.code) == (True, "L6OK")
    assert hellos[0][:3] == b"\x16\x03\x00" and b"HAPROXYSSLCHK\n" in hellos[0]


def test_check_send_proxy_sends_a_local_header_first(scripted: Callable[[Dialogue], int]
                                                     ) -> None:
    heard: list[bytes] = []

    def server(sock: socket.socket) -> None:
        deadline = time.monotonic() + 2
        data = b""
        while len(data) < 16 and time.monotonic() < deadline:
            data += sock.recv(64)
        heard.append(data)

    port = scripted(server)
    config = parse_text(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\nfrontend f\n    bind 127.0.0.1:1\n    default_backend b\n"
        f"backend b\n    server s 127.0.0.1:{port} check send-proxy-v2 check-send-proxy\n",
        "t.cfg", env={})
    backend = config.backends[0]
    assert run_check(check_target(backend, backend.servers[0])).code == "L4OK"
    deadline = time.monotonic() + 2
    while not heard and time.monotonic() < deadline:
        time.sleep(0.01)
    assert heard == [b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"]
