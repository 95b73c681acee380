"""``cookie JSESSIONID route``: geoproxy routes by the jvmRoute Tomcat writes at the end of its
own session ids (``4F2A....srv2``), through the running proxy (2 gevent workers).

geoproxy's spec (persistence.md, "Beyond HAProxy"; geoproxy/persistence/jvmroute.py): the route
is read from the cookie, else from a ``;jsessionid=`` path parameter, else from a
``jsessionid`` query parameter; it names a server by that server's ``cookie`` value, as a
persistence cookie does (DRAIN keeps its users, DOWN and MAINT do not take them); nothing is
rewritten in either direction. When the named server cannot take the request, it is balanced
(or redispatched, when the connection fails), and the new server's own session id, which
names the new server, sticks from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.browser import Browser, Page
from tests.support.ports import free_ports
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.raw_client import RawConnection, RawResponse
from tests.support.redis_server import RedisServer, flush_all
from tests.support.scripted_servers import CASE_HEADER, ScriptedServers
from tests.support.tomcat import Tomcat, module_processes, start_tomcats

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"


@dataclass
class Routes:
    proxy: ProxyProcess
    servers: ScriptedServers
    instances: dict[str, Tomcat]
    ports: dict[str, int]
    redis: redis.Redis

    def connect(self, frontend: str) -> RawConnection:
        return RawConnection(HOST, self.ports[frontend], timeout=5.0)

    def browser(self) -> Browser:
        return Browser(HOST, self.ports["tomcat"], parallel=2)


def routes_config(servers: ScriptedServers, instances: dict[str, Tomcat], ports: dict[str, int]
                  ) -> str:
    frontends = "".join(
        f"frontend {name}\n    bind {HOST}:{port}\n    default_backend {name}\n"
        for name, port in ports.items()
    )
    tomcats = "".join(
        f"    server {route} {instance.address} cookie {route}\n"
        for route, instance in instances.items()
    )
    return f"""defaults
    mode http
    timeout connect 200ms
    timeout client 10s
    timeout server 10s
{frontends}
backend scripted
    balance roundrobin
    cookie JSESSIONID route
    server s1 {servers.address("s1")} cookie srv1
    server s2 {servers.address("s2")} cookie srv2
backend colon
    balance roundrobin
    cookie JSESSIONID route route-delim :
    server s1 {servers.address("s1")} cookie srv1
    server s2 {servers.address("s2")} cookie srv2
backend tomcat
    balance roundrobin
    cookie JSESSIONID route
    option redispatch
    retries 1
{tomcats}"""


@pytest.fixture(scope="module")
def routes(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Routes]:
    flush_all(redis_server.url)
    work: Path = tmp_path_factory.mktemp("route")
    servers = ScriptedServers(["s1", "s2"])
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        with module_processes() as registry:
            instances = start_tomcats(registry, work / "tomcat", ["srv1", "srv2", "srv3"])
            ports = dict(zip(["scripted", "colon", "tomcat"], free_ports(3), strict=True))
            config = routes_config(servers, instances, ports)
            proxy = start_proxy(registry, config, work, redis_server.url, workers=2)
            yield Routes(proxy, servers, instances, ports, client)
    finally:
        servers.stop()
        client.close()


@pytest.fixture
def fleet(routes: Routes) -> Iterator[Routes]:
    """The module's fleet, back to every instance running and READY when the test ends."""
    yield routes
    for route, instance in routes.instances.items():
        routes.redis.hset(f"gp:{{tomcat}}:srv:{route}", mapping={"admin": "ready", "oper": "up"})
        if not instance.is_running:
            instance.start()


def _case(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def _request(connection: RawConnection, target: str, case: str,
             cookie: str | None = None) -> RawResponse:
    lines = [f"GET {target} HTTP/1.1", "Host: route.test", f"{CASE_HEADER}: {case}"]
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return connection.read_response()


def _exchange(routes: Routes, target: str, cookie: str | None = None,
              answer: list[tuple[str, str]] | None = None, frontend: str = "scripted"
              ) -> tuple[RawResponse, str, list[str]]:
    """One request on a new connection: the response, the target the server received and the
    Cookie fields it received."""
    case = _case("route")
    routes.servers.script(case, 200, answer or [])
    with routes.connect(frontend) as connection:
        response = _request(connection, target, case, cookie)
    (received,) = routes.servers.received(case)
    return response, received.target, received.all("cookie")


def test_route_in_the_cookie_picks_the_server_and_nothing_is_rewritten(routes: Routes) -> None:
    cookie = 'a=1; JSESSIONID=4F2A9C.srv2; b="x y"'
    set_cookie = ("Set-Cookie", "JSESSIONID=77AB.srv2; Path=/app; HttpOnly")
    for _ in range(6):
        response, target, received = _exchange(routes, "/app/cart?x=1", cookie, [set_cookie])
        assert response.header("X-Server") == "s2"
        assert (target, received) == ("/app/cart?x=1", [cookie])
        assert [(n.lower(), v) for n, v in response.headers if n.lower() in (
            "set-cookie", "cache-control")] == [("set-cookie", set_cookie[1])]


def test_route_in_a_jsessionid_path_parameter_picks_the_server(routes: Routes) -> None:
    for route, server in (("srv1", "s1"), ("srv2", "s2")):
        target = f"/app/cart;jsessionid=4F2A9C.{route}?item=3"
        for _ in range(3):
            response, received_target, received = _exchange(routes, target, "theme=dark")
            assert response.header("X-Server") == server
            assert (received_target, received) == (target, ["theme=dark"])


def test_route_in_a_jsessionid_query_parameter_picks_the_server(routes: Routes) -> None:
    target = "/app/cart?item=3&jsessionid=4F2A9C.srv2"
    for _ in range(6):
        response, received_target, received = _exchange(routes, target)
        assert response.header("X-Server") == "s2"
        assert (received_target, received) == (target, [])


def test_the_cookie_wins_over_the_url(routes: Routes) -> None:
    for _ in range(6):
        response, _, _ = _exchange(
            routes, "/app/x;jsessionid=A.srv2?jsessionid=B.srv2", "JSESSIONID=C.srv1"
        )
        assert response.header("X-Server") == "s1"


def test_the_first_session_cookie_naming_a_server_routes(routes: Routes) -> None:
    for _ in range(6):
        response, _, received = _exchange(
            routes, "/app/x", "JSESSIONID=A.srv9; JSESSIONID=B.srv2; JSESSIONID=C.srv1"
        )
        assert response.header("X-Server") == "s2"
        assert received == ["JSESSIONID=A.srv9; JSESSIONID=B.srv2; JSESSIONID=C.srv1"]


@pytest.mark.parametrize("cookie", ["JSESSIONID=4F2A9C.srv9", "JSESSIONID=4F2A9C",
                                    "JSESSIONID=4F2A9C.", None])
def test_a_session_id_without_a_known_route_is_balanced(routes: Routes, cookie: str | None
                                                         ) -> None:
    answered = {_exchange(routes, "/app/x", cookie)[0].header("X-Server") for _ in range(8)}
    assert answered == {"s1", "s2"}


def test_route_delim_names_the_separator(routes: Routes) -> None:
    for _ in range(6):
        response, _, _ = _exchange(routes, "/app/x", "JSESSIONID=A.srv1:srv2", frontend="colon")
        assert response.header("X-Server") == "s2"


# -- with the Tomcat-like instances -----------------------------------------------------------


def _login(browser: Browser) -> Page:
    page = browser.get("/app/login?user=routeuser")
    assert page.status == 200 and page.instance is not None
    return page


def _assert_sticks(browser: Browser, instance: str, session: str, count: int = 8) -> None:
    for _ in range(count):
        page = browser.get("/app/page")
        assert (page.status, page.instance, page.session) == (200, instance, session)
        assert page.header("X-Session-Status") == "known"
    assert browser.matching("JSESSIONID", "/app/page") == [session]


def _await_workers(routes: Routes, cookie: str, holds: Callable[[str | None], bool]) -> None:
    """Until 8 requests in a row with ``cookie``, each on a new connection (so on either
    worker), are answered by an instance that ``holds``; at most 3 seconds."""
    started = time.monotonic()
    in_a_row = 0
    while in_a_row < 8:
        with routes.connect("tomcat") as connection:
            answered = _request(connection, "/app/page", _case("probe"), cookie)
        in_a_row = in_a_row + 1 if holds(answered.header("X-Instance")) else 0
        assert time.monotonic() - started < 3.0, "the workers did not see the change"


def test_a_cookieless_client_keeps_its_session_through_jsessionid_in_the_url(
    routes: Routes,
) -> None:
    with routes.connect("tomcat") as connection:
        login = _request(connection, "/app/login?user=nocookies", _case("login"))
        session = login.header("X-Session")
        instance = login.header("X-Instance")
        assert session and instance and session.endswith("." + instance)
        for _ in range(8):
            page = _request(connection, f"/app/page;jsessionid={session}", _case("page"))
            assert page.header("X-Instance") == instance
            assert (page.header("X-Session"), page.header("X-Session-Status")) == (
                session, "known")


@pytest.mark.parametrize("field, value", [("admin", "maint"), ("oper", "down")])
def test_when_the_routed_server_is_unusable_the_new_servers_session_sticks(
    fleet: Routes, field: str, value: str
) -> None:
    with fleet.browser() as browser:
        login = _login(browser)
        home, session = login.instance, login.session
        assert home is not None and session is not None
        _assert_sticks(browser, home, session)
        fleet.redis.hset(f"gp:{{tomcat}}:srv:{home}", field, value)
        _await_workers(fleet, f"JSESSIONID=X.{home}", lambda answered: answered != home)

        page = browser.get("/app/page")
        moved = page.session
        assert page.status == 200 and page.instance not in (None, home)
        assert page.header("X-Session-Status") == "new" and moved is not None
        assert moved.endswith("." + str(page.instance))
        _assert_sticks(browser, str(page.instance), moved)

        fleet.redis.hset(f"gp:{{tomcat}}:srv:{home}", field, "ready" if field == "admin" else "up")
        _await_workers(fleet, f"JSESSIONID=X.{home}", lambda answered: answered == home)
        _assert_sticks(browser, str(page.instance), moved)


def test_when_the_routed_instance_stops_the_request_is_redispatched_and_sticks_there(
    fleet: Routes,
) -> None:
    with fleet.browser() as browser:
        login = _login(browser)
        home, session = str(login.instance), str(login.session)
        fleet.instances[home].stop()
        page = browser.get("/app/page")
        assert page.status == 200 and page.instance != home
        assert page.header("X-Session-Status") == "new"
        moved, there = str(page.session), str(page.instance)
        assert moved.endswith("." + there) and moved != session
        _assert_sticks(browser, there, moved)
        fleet.instances[home].start()
        _assert_sticks(browser, there, moved)


def test_a_drained_server_keeps_its_users(fleet: Routes) -> None:
    with fleet.browser() as browser:
        login = _login(browser)
        home, session = str(login.instance), str(login.session)
        fleet.redis.hset(f"gp:{{tomcat}}:srv:{home}", "admin", "drain")
        _await_workers(fleet, "", lambda answered: answered != home)
        _assert_sticks(browser, home, session)
