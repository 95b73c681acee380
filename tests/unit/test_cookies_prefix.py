"""The story geoproxy was born from, told with ``cookie JSESSIONID prefix indirect nocache``:
a Tomcat instance restarts, answers the client's old session with a new session cookie, and the
client must get it (HAProxy 2.6 drops it: the deliberate difference, see cookies.py)."""

from __future__ import annotations

from geoproxy.balance.view import OperState, ServerView
from geoproxy.config.model import CookieMode, CookiePolicy, Location
from geoproxy.persistence.cookies import read_request, rewrite_response
from geoproxy.persistence.result import KEEP, Persistence, PersistenceRequest, SetCookieStatus

STORY = CookiePolicy(
    "JSESSIONID", CookieMode.PREFIX, Location("story.cfg", 3), indirect=True, nocache=True
)
S1 = ServerView("s1", 0, 1, cookie="s1")
S2 = ServerView("s2", 1, 1, cookie="s2")


def visit(cookie: str | None, servers: list[ServerView] = [S1, S2]) -> Persistence:  # noqa: B006
    return read_request(STORY, servers, PersistenceRequest("GET", cookie=cookie), 1e9)


def answer(decision: Persistence, server: ServerView, *set_cookie: str) -> list[str]:
    headers = [("Content-Type", "text/html")] + [("Set-Cookie", v) for v in set_cookie]
    rewritten = rewrite_response(decision, server, 200, headers, 1e9)
    return [v for k, v in rewritten.headers if k == "Set-Cookie"]


def test_a_restarted_server_s_new_session_reaches_the_client() -> None:
    first = visit(None)
    assert answer(first, S1, "JSESSIONID=A; Path=/app") == ["JSESSIONID=s1~A; Path=/app"]

    again = visit("JSESSIONID=s1~A")
    assert again.server == S1
    assert again.upstream_cookie == "JSESSIONID=A"
    assert answer(again, S1) == []

    # s1 restarted: it knows no session A and opens session B
    assert answer(again, S1, "JSESSIONID=B; Path=/app") == ["JSESSIONID=s1~B; Path=/app"]

    after = visit("JSESSIONID=s1~B")
    assert after.server == S1
    assert after.upstream_cookie == "JSESSIONID=B"


def test_a_server_repeating_the_client_s_session_is_still_dropped_as_haproxy_does() -> None:
    again = visit("JSESSIONID=s1~A")
    rewritten = rewrite_response(again, S1, 200, [("Set-Cookie", "JSESSIONID=A")], 1e9)
    assert rewritten.headers == []
    assert rewritten.status is SetCookieStatus.DELETED


def test_a_client_of_a_dead_server_is_moved_and_learns_its_new_session() -> None:
    down = [ServerView("s1", 0, 1, cookie="s1", oper=OperState.DOWN), S2]
    moved = visit("JSESSIONID=s1~B", down)
    assert moved.server is None and moved.status.value == "D"
    assert moved.upstream_cookie == "JSESSIONID=B"
    assert answer(moved, S2, "JSESSIONID=C; Path=/app") == ["JSESSIONID=s2~C; Path=/app"]


def test_a_request_without_the_cookie_costs_nothing() -> None:
    decision = visit("theme=dark; lang=fr")
    assert decision.upstream_cookie is KEEP
    headers = [("Content-Type", "text/html")]
    assert rewrite_response(decision, S1, 200, headers, 1e9).headers is headers
