"""``cookie JSESSIONID route``: Tomcat's jvmRoute, read from the session id's suffix."""

from __future__ import annotations

from geoproxy.balance.view import AdminState, OperState, ServerView
from geoproxy.config.model import CookieMode, CookiePolicy, Location
from geoproxy.persistence.cookies import read_request, rewrite_response
from geoproxy.persistence.jvmroute import route_of
from geoproxy.persistence.result import KEEP, CookieStatus, PersistenceRequest, SetCookieStatus

POLICY = CookiePolicy("JSESSIONID", CookieMode.ROUTE, Location("test", 1))
SERVERS = [
    ServerView("tomcat1", 0, 1, cookie="srv16060"),
    ServerView("tomcat2", 1, 1, cookie="srv16061"),
    ServerView("tomcat3", 2, 1, cookie="srv16062", oper=OperState.DOWN),
    ServerView("tomcat4", 3, 0, cookie="srv16063", admin=AdminState.DRAIN),
    ServerView("tomcat5", 4, 1, cookie="srv16064", admin=AdminState.MAINT),
]


def read(cookie: str | None = None, target: str = "/app", **flags: bool) -> tuple[str | None, str]:
    request = PersistenceRequest("GET", cookie=cookie, target=target, **flags)
    decision = read_request(POLICY, SERVERS, request, 0.0)
    assert decision.upstream_cookie is KEEP
    return (decision.server.name if decision.server else None), decision.status.value


def test_the_route_after_the_last_dot_of_the_cookie_names_the_server() -> None:
    assert read("JSESSIONID=4F2A.9C.srv16061") == ("tomcat2", "V")


def test_no_session_id_means_no_route() -> None:
    assert read() == (None, "N")
    assert read("other=1") == (None, "N")


def test_a_session_id_without_a_route_is_invalid() -> None:
    assert read("JSESSIONID=4F2A9C") == (None, "I")
    assert read("JSESSIONID=4F2A9C.") == (None, "I")


def test_an_unknown_route_is_invalid() -> None:
    assert read("JSESSIONID=4F2A9C.srv99") == (None, "I")


def test_the_path_parameter_is_read_when_there_is_no_cookie() -> None:
    assert read(target="/app/page;jsessionid=4F2A.srv16060?x=1") == ("tomcat1", "V")
    assert read(target="/app/page;JSESSIONID=4F2A.srv16060/more") == ("tomcat1", "V")


def test_the_query_parameter_is_read_when_there_is_no_cookie_nor_path_parameter() -> None:
    assert read(target="/app/page?a=1&jsessionid=4F2A.srv16061") == ("tomcat2", "V")


def test_the_cookie_wins_over_the_url() -> None:
    got = read("JSESSIONID=4F2A.srv16060", target="/app;jsessionid=4F2A.srv16061")
    assert got == ("tomcat1", "V")


def test_the_first_cookie_that_names_a_server_wins_and_the_user_is_not_bounced() -> None:
    cookies = "JSESSIONID=A.srv99; JSESSIONID=B.srv16061; JSESSIONID=C.srv16060"
    assert read(cookies) == ("tomcat2", "V")


def test_a_draining_server_keeps_its_sessions() -> None:
    assert read("JSESSIONID=A.srv16063") == ("tomcat4", "V")


def test_a_down_server_keeps_its_sessions_only_with_option_persist() -> None:
    assert read("JSESSIONID=A.srv16062") == (None, "D")
    assert read("JSESSIONID=A.srv16062", persist=True) == ("tomcat3", "D")


def test_a_server_in_maintenance_keeps_its_sessions_only_when_forced() -> None:
    assert read("JSESSIONID=A.srv16064", persist=True) == (None, "D")
    assert read("JSESSIONID=A.srv16064", force_persist=True) == ("tomcat5", "D")


def test_ignore_persist_leaves_the_route_unused() -> None:
    assert read("JSESSIONID=A.srv16060", ignore_persist=True) == (None, "U")


def test_a_custom_route_delimiter_is_honoured() -> None:
    policy = CookiePolicy("SID", CookieMode.ROUTE, Location("test", 1), route_delim="-")
    request = PersistenceRequest("GET", cookie="SID=ab.cd-srv16061")
    assert read_request(policy, SERVERS, request, 0.0).server == SERVERS[1]
    assert route_of("a-b-c", "-") == "c"


def test_the_response_is_never_touched() -> None:
    decision = read_request(POLICY, SERVERS, PersistenceRequest("GET"), 0.0)
    headers = [("Set-Cookie", "JSESSIONID=NEW.srv16060; Path=/app"), ("X", "1")]
    rewritten = rewrite_response(decision, SERVERS[0], 200, headers, 0.0)
    assert rewritten.headers is headers
    assert rewritten.status is SetCookieStatus.PROVIDED
    plain = rewrite_response(decision, SERVERS[0], 200, [("X", "1")], 0.0)
    assert plain.status is SetCookieStatus.NONE


def test_route_mode_reports_valid_in_the_log_letter_enum() -> None:
    request = PersistenceRequest("GET", cookie="JSESSIONID=A.srv16060")
    assert read_request(POLICY, SERVERS, request, 0.0).status is CookieStatus.VALID
