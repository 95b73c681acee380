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

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from geoproxy.persistence.cookie_dates import decode_date, encode_date
from geoproxy.persistence.dynamic import dynamic_cookie
from tests.support.backends import Backend, start_backends
from tests.support.browser import Browser
from tests.support.ports import free_port, free_ports
from tests.support.proxy_process import PortTaken, ProxyProcess, start_proxy
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
            seed_server_states(client, list(suites.values()))
            # dozens of ports chosen free, then bound: another test may take one meanwhile
            for attempt in range(3):
                ports = dict(zip(backends, free_ports(len(backends)), strict=True))
                config = wire_config(backends, ports)
                try:
                    proxy = start_proxy(registry, config, work, redis_server.url, workers=2)
                    break
                except PortTaken:
                    if attempt == 2:
                        raise
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


# -- hand-written: what the recordings do not show ------------------------------------------


def _request(
    connection: RawConnection, case: str, cookie: str | None = None, path: str = "/app/x"
) -> RawResponse:
    lines = [f"GET {path} HTTP/1.1", "Host: wire.test", f"{CASE_HEADER}: {case}"]
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return connection.read_response()


def _set_cookies(response: RawResponse) -> list[str]:
    return [value for name, value in response.headers if name.lower() == "set-cookie"]


def json_pairs(response: RawResponse) -> list[tuple[str, str]]:
    """The request fields a demo backend's /headers saw."""
    return [(name, value) for name, value in json.loads(response.body)]


def _case(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def test_insert_indirect_server_gets_the_other_cookies_untouched_and_in_order(wire: Wire) -> None:
    with wire.connect("demo_insert") as connection:
        cookie = 'a=1; SRV=d2; b="x y"; SRV2=d1; c=3'
        response = _request(connection, "insert", cookie, path="/headers")
        assert response.status == 200 and response.header("X-Server") == "demo2"
        received = [value for name, value in json_pairs(response) if name.lower() == "cookie"]
        assert received == ['a=1; b="x y"; SRV2=d1; c=3']
        assert _set_cookies(response) == [] and response.header("Cache-Control") is None

        response = _request(connection, "insert", "a=1", path="/headers")
        assert response.header("X-Server") == "demo1"
        assert [v for n, v in json_pairs(response) if n.lower() == "cookie"] == ["a=1"]
        assert _set_cookies(response) == ["SRV=d1; path=/"]
        assert response.header("Cache-Control") is None  # a plain 200 is not cacheable

        response = _request(connection, "insert", "SRV=d2", path="/headers")
        assert response.header("X-Server") == "demo2"
        assert [n for n, _ in json_pairs(response) if n.lower() == "cookie"] == []


def test_prefix_server_gets_its_own_session_id_back(wire: Wire) -> None:
    with wire.connect("demo_prefix") as connection:
        response = _request(
            connection, "prefix", "x=1; JSESSIONID=d2~ABC.srv2; y=2", path="/headers"
        )
        assert response.header("X-Server") == "demo2"
        assert [v for n, v in json_pairs(response) if n.lower() == "cookie"] == [
            "x=1; JSESSIONID=ABC.srv2; y=2"
        ]
        response = _request(
            connection, "prefix", "", path="/set-cookie?name=JSESSIONID&value=NEW&path=/app"
        )
        assert response.header("X-Server") == "demo1"
        assert _set_cookies(response) == ["JSESSIONID=d1~NEW; Path=/app"]


def test_prefix_every_response_on_a_keep_alive_connection_names_the_server_that_answered(
    wire: Wire,
) -> None:
    steps = [  # (cookie sent, the server's new session, the server that must answer)
        (None, "A", None),
        ("JSESSIONID=s2~B", "C", "s2"),
        ("JSESSIONID=s1~D", "E", "s1"),
        (None, "F", None),
        (None, "G", None),
        ("JSESSIONID=s2~H", "H2", "s2"),
        ("JSESSIONID=zz~I", "J", None),
    ]
    with wire.connect("prefix_rr") as connection:
        for cookie, new_session, direct in steps:
            case = _case("keep-alive prefix")
            wire.servers.script(case, 200, [("Set-Cookie", f"JSESSIONID={new_session}; Path=/app")])
            response = _request(connection, case, cookie)
            answered = response.header("X-Server")
            assert direct is None or answered == direct
            assert _set_cookies(response) == [f"JSESSIONID={answered}~{new_session}; Path=/app"]
            if cookie is not None:
                sent = cookie.split("~", 1)[1]
                assert wire.servers.received(case)[0].all("cookie") == [f"JSESSIONID={sent}"]


def test_prefix_drops_the_servers_cookie_only_when_the_client_already_has_that_value(
    wire: Wire,
) -> None:
    with wire.connect("prefix_rr") as connection:
        same = _case("same session")
        wire.servers.script(same, 200, [("Set-Cookie", "JSESSIONID=OLD; Path=/app")])
        response = _request(connection, same, "JSESSIONID=s1~OLD")
        assert response.header("X-Server") == "s1" and _set_cookies(response) == []
        new = _case("new session")
        wire.servers.script(new, 200, [("Set-Cookie", "JSESSIONID=NEW; Path=/app; HttpOnly")])
        response = _request(connection, new, "JSESSIONID=s1~OLD")
        assert _set_cookies(response) == ["JSESSIONID=s1~NEW; Path=/app; HttpOnly"]


def test_two_session_cookies_in_the_jar_route_by_the_first_and_never_bounce(wire: Wire) -> None:
    with Browser(HOST, wire.ports["prefix_rr"]) as browser:
        browser.set_cookie("JSESSIONID", "s2~STALE", "/")
        browser.set_cookie("JSESSIONID", "s1~CURRENT", "/app")
        for _ in range(8):
            case = _case("two in the jar")
            page = browser.get("/app/page", headers={CASE_HEADER: case})
            assert page.sent_cookie == "JSESSIONID=s1~CURRENT; JSESSIONID=s2~STALE"
            assert page.header("X-Server") == "s1"
            received = wire.servers.received(case)[0].all("cookie")
            assert received == ["JSESSIONID=CURRENT; JSESSIONID=STALE"]
        case = _case("new session, stale cookie still there")
        wire.servers.script(case, 200, [("Set-Cookie", "JSESSIONID=FRESH; Path=/app")])
        page = browser.get("/app/page", headers={CASE_HEADER: case})
        assert page.all("Set-Cookie") == ["JSESSIONID=s1~FRESH; Path=/app"]
        for _ in range(4):
            page = browser.get("/app/page", headers={CASE_HEADER: _case("after")})
            assert page.header("X-Server") == "s1"
        assert browser.matching("JSESSIONID", "/app/page") == ["s1~FRESH", "s2~STALE"]


def test_redispatch_moves_a_persistent_user_off_a_dead_server_and_gives_a_new_cookie(
    wire: Wire,
) -> None:
    with wire.connect("redispatch_insert") as connection:
        case = _case("redispatch insert")
        response = _request(connection, case, "a=1; SRV=dead; b=2")
        assert response.status == 200 and response.header("X-Server") == "s1"
        assert _set_cookies(response) == ["SRV=s1; path=/"]
        assert wire.servers.received(case)[0].all("cookie") == ["a=1; b=2"]
        response = _request(connection, _case("then direct"), "a=1; SRV=s1; b=2")
        assert response.header("X-Server") == "s1" and _set_cookies(response) == []


def test_redispatch_in_prefix_mode_prefixes_the_new_servers_session(wire: Wire) -> None:
    with wire.connect("redispatch_prefix") as connection:
        case = _case("redispatch prefix")
        wire.servers.script(case, 200, [("Set-Cookie", "JSESSIONID=NEW.s1; Path=/app")])
        response = _request(connection, case, "JSESSIONID=dead~OLD.dead")
        assert response.header("X-Server") == "s1"
        assert _set_cookies(response) == ["JSESSIONID=s1~NEW.s1; Path=/app"]
        assert wire.servers.received(case)[0].all("cookie") == ["JSESSIONID=OLD.dead"]


def test_without_redispatch_a_dead_persistent_server_answers_503(wire: Wire) -> None:
    with wire.connect("no_redispatch") as connection:
        case = _case("no redispatch")
        response = _request(connection, case, "SRV=dead")
        assert response.status == 503 and _set_cookies(response) == []
        assert wire.servers.received(case) == []
    with wire.connect("no_redispatch") as connection:
        response = _request(connection, _case("no cookie"))
        assert response.header("X-Server") == "s1"
        assert _set_cookies(response) == ["SRV=s1; path=/"]


def _dated(response: RawResponse) -> tuple[str, int, int]:
    """(server id, last-seen, first-seen) of the one SRV cookie a response inserted."""
    (cookie,) = _set_cookies(response)
    value, _, attributes = cookie.partition(";")
    assert attributes == " path=/"
    server, last_text, first_text = value.removeprefix("SRV=").split("|")
    last, first = decode_date(last_text), decode_date(first_text)
    assert last is not None and first is not None, cookie
    return server, last, first


def test_maxidle_maxlife_insert_todays_dates_and_refresh_the_last_seen_one(wire: Wire) -> None:
    with wire.connect("maxidle") as connection:
        before = int(time.time())
        server, last, first = _dated(_request(connection, _case("no cookie")))
        after = int(time.time())
        assert server == "s1" and last == first and before <= last <= after + 3  # rounded up

        # Direct to s2 with fresh dates: the first-seen date is kept as sent, last-seen is now.
        sent_first = encode_date(before - 600)
        cookie = f"SRV=s2|{encode_date(before - 20)}|{sent_first}"
        response = _request(connection, _case("fresh"), cookie)
        assert response.header("X-Server") == "s2"
        (inserted,) = _set_cookies(response)
        server, last, first = _dated(response)
        assert server == "s2" and before <= last <= int(time.time()) + 3
        assert inserted.split(";")[0].endswith("|" + sent_first)

        # Idle longer than maxidle (60 s): ignored, balanced, dates started afresh.
        cookie = f"SRV=s2|{encode_date(before - 120)}|{encode_date(before - 200)}"
        response = _request(connection, _case("idle"), cookie)
        server, last, first = _dated(response)
        assert response.header("X-Server") == "s1" and server == "s1" and last == first

        # Older than maxlife (3600 s), however fresh its last-seen date.
        cookie = f"SRV=s2|{encode_date(before - 10)}|{encode_date(before - 7200)}"
        response = _request(connection, _case("old"), cookie)
        server, last, first = _dated(response)
        assert response.header("X-Server") == "s1" and server == "s1" and last == first


def test_a_server_drained_in_redis_keeps_its_persistent_users_and_gets_no_new_ones(
    wire: Wire,
) -> None:
    key = "gp:{drain}:srv:s2"
    wire.redis.hset(key, "admin", "drain")
    try:
        started = time.monotonic()
        in_a_row = 0
        while in_a_row < 8:  # new connections, so both workers must have seen it
            with wire.connect("drain") as connection:
                answered = _request(connection, _case("new user")).header("X-Server")
            in_a_row = in_a_row + 1 if answered == "s1" else 0
            assert time.monotonic() - started < 2.0, "the workers did not see the drain"
        for _ in range(6):  # new connections land on both workers
            with wire.connect("drain") as connection:
                response = _request(connection, _case("new user"))
                assert response.header("X-Server") == "s1"
                assert _set_cookies(response) == ["SRV=s1; path=/"]
                response = _request(connection, _case("persistent user"), "SRV=s2")
                assert response.header("X-Server") == "s2" and _set_cookies(response) == []
    finally:
        wire.redis.hset(key, "admin", "ready")
