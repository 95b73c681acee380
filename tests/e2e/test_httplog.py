"""One line per request in the shape of HAProxy's ``option httplog`` (manual 8.2.3, "HTTP log
format"), on standard output or to the ``log`` targets, and ``option dontlognull``."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import pytest

from tests.support.backends import Backend
from tests.support.http_client import get, request
from tests.support.ports import free_port
from tests.support.raw_client import RawConnection

pytestmark = pytest.mark.e2e

LINE = re.compile(
    r"(?P<client>[\d.]+):(?P<port>\d+) \[(?P<date>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] "
    r"(?P<frontend>\S+) (?P<backend>[^/\s]+)/(?P<server>\S+) "
    r"(?P<TR>-?\d+)/(?P<Tw>-?\d+)/(?P<Tc>-?\d+)/(?P<Tr>-?\d+)/(?P<Ta>-?\d+) "
    r"(?P<status>\d{3}) (?P<bytes>\d+) - - (?P<tsc>\S{4}) "
    r"(?P<ac>\d+)/(?P<fc>\d+)/(?P<bc>\d+)/(?P<sc>\d+)/(?P<rc>\+?\d+) (?P<sq>\d+)/(?P<bq>\d+) "
    r'"(?P<request>[^"]*)"$'
)


def config(port: int, servers: list[Backend], dead_port: int, global_log: str = "") -> str:
    lines = "\n".join(f"  server {s.name} 127.0.0.1:{s.port} cookie {s.name}" for s in servers)
    defaults_log = "  log global" if global_log else ""
    return f"""
global
{global_log}
defaults
{defaults_log}
  mode http
  option httplog
  option dontlognull
  timeout connect 200ms
  timeout client 5s
  timeout server 5s
  timeout http-request 1s
frontend web
  bind 127.0.0.1:{port}
  default_backend app
backend app
  balance roundrobin
  cookie SERVERID insert indirect nocache
{lines}
  server dead 127.0.0.1:{dead_port} cookie dead
"""


def log_lines(output: str) -> list[re.Match[str]]:
    return [m for m in (LINE.match(line) for line in output.splitlines()) if m]


def wait_for_lines(read: Callable[[], list[re.Match[str]]], count: int) -> list[re.Match[str]]:
    deadline = time.monotonic() + 5
    lines = read()
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        lines = read()
    return lines


def test_each_request_gets_one_line_on_stdout_with_haproxys_fields(
    proxy: Callable[..., object], backends: Callable[..., list[Backend]]
) -> None:
    servers = backends(2, ["s1", "s2"])
    port, dead = free_port(), free_port()
    running = proxy(config(port, servers, dead), workers=1)
    answer = get(port, "/hello?x=1")
    assert answer.status == 200
    sticky = request(port, "GET", "/again", headers={"Cookie": "SERVERID=s2"})
    assert sticky.header("X-Server") == "s2"
    refused = request(port, "GET", "/", headers={"Cookie": "SERVERID=dead"})
    assert refused.status == 503
    with RawConnection("127.0.0.1", port) as connection:
        connection.send(b"GET /\x01 HTTP/1.1\r\n\r\n")
        assert connection.read_until_closed().startswith(b"HTTP/1.1 400")
    with RawConnection("127.0.0.1", port) as connection:  # sends nothing: dontlognull
        assert connection.read_until_closed().startswith(b"HTTP/1.1 408")

    lines = wait_for_lines(lambda: log_lines(running.output()), 4)  # type: ignore[attr-defined]
    assert len(lines) == 4, running.output()  # type: ignore[attr-defined]
    first, second, third, fourth = lines
    assert (first["frontend"], first["backend"], first["status"]) == ("web", "app", "200")
    assert first["server"] == answer.header("X-Server")
    assert first["request"] == "GET /hello?x=1 HTTP/1.1"
    assert first["tsc"] == "--NI", "no cookie sent, one inserted"
    assert int(first["bytes"]) > 12 and int(first["Ta"]) >= 0 and first["rc"] == "0"
    assert second["tsc"] == "--VN" and second["server"] == "s2"
    # the dead server's cookie: three retries there, then 503; HAProxy logs it "SC"
    assert (third["status"], third["tsc"][:2], third["server"]) == ("503", "SC", "dead")
    assert third["rc"] == "3" and third["Tc"] == "-1"
    assert fourth["status"] == "400" and fourth["request"] == "<BADREQ>"
    assert (fourth["backend"], fourth["server"], fourth["tsc"]) == ("web", "<NOSRV>", "PR--")


def test_a_log_target_receives_rfc3164_datagrams(
    proxy: Callable[..., object], backends: Callable[..., list[Backend]]
) -> None:
    servers = backends(1, ["s1"])
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    port, dead = free_port(), free_port()
    proxy(config(port, servers, dead, f"  log 127.0.0.1:{sink.getsockname()[1]} local0"), workers=1)
    try:
        assert get(port, "/syslog").status == 200
        datagram = sink.recv(4096).decode()
    finally:
        sink.close()
    # local0 (16) * 8 + info (6) = 134
    assert re.match(r"<134>\w{3} [ \d]\d \d\d:\d\d:\d\d geoproxy\[\d+\]: ", datagram), datagram
    entry = LINE.match(datagram.split(": ", 1)[1])
    assert entry is not None and entry["request"] == "GET /syslog HTTP/1.1"
