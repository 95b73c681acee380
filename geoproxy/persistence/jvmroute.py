"""``cookie NAME route [route-delim C]``: the application names its server in its own session
id (Tomcat's jvmRoute: ``JSESSIONID=4F2A...C1.srv16060``), and geoproxy routes by that name.

Rules:
1. The session id comes from the cookie NAME (rules 1 and 5 of ``cookies.py`` apply: several
   cookies are tried in order, the first that chooses a server wins). Only when the request
   carries no such cookie does it come from a ``;name=ID`` path parameter, then from a
   ``name=ID`` query parameter, both with NAME compared case-insensitively (``JSESSIONID``
   matches Tomcat's ``;jsessionid=``); the first of each wins.
2. The route is the text after the LAST delimiter (``.`` unless ``route-delim`` says otherwise)
   of the session id. No delimiter, or nothing after it: INVALID.
3. The route is matched to the servers' ``cookie`` values as a server id is in the cookie modes
   (rule 4 of ``cookies.py``: DRAIN keeps its users, DOWN needs ``option persist`` or
   ``force-persist``, MAINT needs ``force-persist``).
4. Nothing is rewritten, in either direction: the Cookie header and the URL reach the server as
   sent, Set-Cookie headers reach the client as sent, nothing is inserted. The response log
   letter is P when the server set the cookie, else N.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from geoproxy.balance.view import ServerView
from geoproxy.config.model import CookiePolicy
from geoproxy.persistence.cookie_header import parse_set_cookie, segments
from geoproxy.persistence.cookie_request import match_server
from geoproxy.persistence.result import (
    KEEP,
    CookieStatus,
    Persistence,
    PersistenceRequest,
    RewrittenResponse,
    SetCookieStatus,
)

_PATH_PARAM_END = ";/?#"
_QUERY_PARAM_END = "&;#"


def route_of(session_id: str, delim: str) -> str | None:
    """The route at the end of ``session_id``: after its last ``delim``; None if absent."""
    cut = session_id.rfind(delim)
    if cut < 0 or cut == len(session_id) - len(delim):
        return None
    return session_id[cut + len(delim) :]


def _path_param(target: str, name: str) -> str | None:
    """The first ``;name=VALUE`` of the path part of ``target`` (name case-insensitive)."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    key = ";" + name.lower() + "="
    start = path.lower().find(key)
    if start < 0:
        return None
    start += len(key)
    end = start
    while end < len(path) and path[end] not in _PATH_PARAM_END:
        end += 1
    return path[start:end]


def _query_param(target: str, name: str) -> str | None:
    """The first ``name=VALUE`` of the query of ``target`` (name case-insensitive)."""
    query = target.partition("?")[2].split("#", 1)[0]
    key = name.lower() + "="
    for param in query.replace(";", "&").split("&"):
        if param[: len(key)].lower() == key:
            return param[len(key) :]
    return None


def _session_ids(policy: CookiePolicy, request: PersistenceRequest) -> Iterator[str]:
    """Every session id the request carries, in the order rule 1 tries them."""
    found = False
    if request.cookie and policy.name in request.cookie:
        for seg in segments(request.cookie):
            if seg.is_cookie and seg.name == policy.name:
                found = True
                yield seg.value
    if found:
        return
    for fetch in (_path_param, _query_param):
        value = fetch(request.target, policy.name)
        if value is not None:
            yield value
            return


def read_route_request(
    policy: CookiePolicy, servers: Sequence[ServerView], request: PersistenceRequest
) -> Persistence:
    """The decision for one request in route mode: the server its session id names."""
    status = CookieStatus.NONE
    chosen: ServerView | None = None
    for session_id in _session_ids(policy, request):
        route = route_of(session_id, policy.route_delim)
        if route and not request.ignore_persist and chosen is None:
            found, refused = match_server(servers, route, request)
            if found is not None:
                chosen = found
                up = found.accepts_persistent
                status = CookieStatus.VALID if up else CookieStatus.DOWN
                continue
            if refused:
                status = CookieStatus.DOWN
        if status is CookieStatus.NONE:
            skipped = request.ignore_persist or chosen is not None
            status = CookieStatus.UNUSED if skipped else CookieStatus.INVALID
    return Persistence(policy, chosen, status, KEEP, request.method, request.ignore_persist)


def rewrite_route_response(
    policy: CookiePolicy, headers: list[tuple[str, str]]
) -> RewrittenResponse:
    """Route mode leaves the response alone; only the log letter is computed."""
    for name, value in headers:
        if name.lower() == "set-cookie":
            pair = parse_set_cookie(value)
            if pair is not None and pair.name == policy.name:
                return RewrittenResponse(headers, SetCookieStatus.PROVIDED)
    return RewrittenResponse(headers, SetCookieStatus.NONE)
