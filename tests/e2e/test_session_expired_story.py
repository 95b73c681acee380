"""The story geoproxy was born from, as a test.

A Tomcat cluster sat behind HAProxy with ``cookie JSESSIONID prefix indirect nocache``. Tomcat
keeps sessions in memory and names its instance at the end of each session id
(``JSESSIONID=4F2A....srv1; Path=/app; HttpOnly``); a single-sign-on cookie at ``/`` lets any
instance open a new session for a logged-in user. When an instance restarted, its sessions
were gone: Tomcat answered the next request with a new session and a new ``Set-Cookie``. But
the request had arrived with a valid prefixed cookie for that very server, and HAProxy, with
``indirect``, removed the server's ``Set-Cookie``: the browser kept the dead session id, and the
user saw "Session Expired" on every page until they deleted their cookies (HAProxy 2.6 still
does this; the configuration manual warns against the combination).

geoproxy forwards a server's new session cookie in prefix mode (its one deliberate difference
from HAProxy). Here a browser (a cookie jar with ``http.cookiejar`` semantics, two keep-alive
connections) lives through the whole story against two Tomcat-like instances behind one
geoproxy with 2 gevent workers, for each of four ways to stick a user to an instance:
``prefix indirect nocache`` (the story's own line), ``insert indirect nocache`` (a cookie of
geoproxy's own), ``route`` (geoproxy reads Tomcat's jvmRoute) and a stick table in Redis that
learns the session id from the server's ``Set-Cookie``:

1. the user logs in and sticks to one instance for many requests;
2. that instance restarts: the very next request works, with a new session, and sticks again;
3. the instance stops: the next request works on the other instance (``option redispatch``),
   with a new session there;
4. the instance comes back: the user stays where they are;
and at no point does the jar hold two session cookies that both match the application's path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.browser import Browser, Page
from tests.support.ports import free_ports
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.redis_server import RedisServer, flush_all
from tests.support.tomcat import Tomcat, module_processes, start_tomcats

pytestmark = pytest.mark.e2e

MODES = {
    "prefix": "cookie JSESSIONID prefix indirect nocache",
    "insert": "cookie SERVERID insert indirect nocache",
    "route": "cookie JSESSIONID route",
    "stick": (
        "stick-table type string len 64 size 10k expire 30m\n"
        "    stick on req.cook(JSESSIONID)\n"
        "    stick store-response res.cook(JSESSIONID)"
    ),
}
PAGE = "/app/account"
STICKY_REQUESTS = 12


@dataclass
class Story:
    proxy: ProxyProcess
    instances: dict[str, Tomcat]
    ports: dict[str, int]


def story_config(ports: dict[str, int], instances: dict[str, Tomcat]) -> str:
    lines = [
        "defaults",
        "    mode http",
        "    timeout connect 200ms",
        "    timeout client 10s",
        "    timeout server 10s",
        "    retries 1",
        "    option redispatch",
    ]
    for mode, persistence in MODES.items():
        lines += [
            f"frontend {mode}",
            f"    bind 127.0.0.1:{ports[mode]}",
            f"    default_backend {mode}",
            f"backend {mode}",
            "    balance leastconn",
            f"    {persistence}",
        ]
        for route, instance in instances.items():
            lines.append(f"    server {route} {instance.address} cookie {route}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def story(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    flush_all(redis_server.url)
    work: Path = tmp_path_factory.mktemp("story")
    with module_processes() as registry:
        instances = start_tomcats(registry, work / "tomcat", ["srv1", "srv2"])
        ports = dict(zip(MODES, free_ports(len(MODES)), strict=True))
        proxy = start_proxy(
            registry, story_config(ports, instances), work, redis_server.url, workers=2
        )
        yield Story(proxy, instances, ports)


@pytest.fixture
def fleet(story: Story) -> Iterator[Story]:
    """The module's fleet, every instance running again when the test ends."""
    yield story
    for instance in story.instances.values():
        if not instance.is_running:
            instance.start()


def assert_one_session_cookie(browser: Browser) -> str:
    """The jar holds exactly one JSESSIONID that the application's pages would receive."""
    values = browser.matching("JSESSIONID", PAGE)
    assert len(values) == 1, f"the jar would send {values} to {PAGE}"
    return values[0]


def assert_served(page: Page, instance: str, how: str) -> None:
    body = page.body.decode(errors="replace")
    assert page.status == 200, f"{page.status} from {page.instance}: {body}"
    assert (page.instance, page.header("X-Session-Status")) == (instance, how), body


def assert_sticks(browser: Browser, instance: str, session: str, count: int) -> None:
    for _ in range(count):
        page = browser.get(PAGE)
        assert_served(page, instance, "known")
        assert page.session == session
        assert assert_one_session_cookie(browser).endswith(session)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_user_survives_restart_stop_and_return_of_their_instance(
    fleet: Story, mode: str
) -> None:
    with Browser("127.0.0.1", fleet.ports[mode], parallel=2) as browser:
        login = browser.get(f"/app/login?user={mode}user")
        home = login.instance
        assert login.status == 200 and home in fleet.instances
        other = next(route for route in fleet.instances if route != home)
        session = login.session
        assert session is not None and session.endswith("." + home)
        assert assert_one_session_cookie(browser).endswith(session)
        assert_sticks(browser, home, session, STICKY_REQUESTS)

        # The instance restarts: its sessions are gone, the SSO cookie is still valid.
        fleet.instances[home].restart()
        page = browser.get(PAGE)
        assert_served(page, home, "new")
        restarted = page.session
        assert restarted is not None and restarted != session
        assert assert_one_session_cookie(browser).endswith(restarted)
        assert_sticks(browser, home, restarted, STICKY_REQUESTS)

        # The instance stops: the request is redispatched, the other one opens a session.
        fleet.instances[home].stop()
        page = browser.get(PAGE)
        assert_served(page, other, "new")
        moved = page.session
        assert moved is not None and moved.endswith("." + other)
        assert assert_one_session_cookie(browser).endswith(moved)
        assert_sticks(browser, other, moved, STICKY_REQUESTS)

        # The instance comes back: the user stays where their session is.
        fleet.instances[home].start()
        assert_sticks(browser, other, moved, STICKY_REQUESTS)
        assert browser.connections == 2, "the browser's keep-alive connections were closed"
