"""Cookie persistence: HAProxy's ``cookie`` keyword, read on the request, applied on the response.

``read_request`` runs before balancing, ``rewrite_response`` on the server's response headers;
both are pure (time is ``now``, seconds since the epoch) and work on one request at a time, so
nothing carries over between the requests of a keep-alive connection. They dispatch on the
cookie mode; ``route`` mode (Tomcat's jvmRoute) lives in ``jvmroute.py``.

Rules: reading the request (rewrite, insert, prefix modes)
1. Cookies are read from the Cookie header (several headers joined by ``"; "``), split on ``;``
   and ``,`` outside quotes, spaces around names, ``=`` and values ignored. ``$Attributes``
   belong to the cookie before them; a cookie without ``=`` is nobody's and is kept untouched.
   Names are case-sensitive. (``cookie_header.py``)
2. Value forms: ``SRV`` or ``SRV|LASTSEEN[|FIRSTSEEN]`` in insert and rewrite modes (HAProxy's
   30-bit, 4-second base64 dates, ``cookie_dates.py``); ``SRV~APPVALUE`` in prefix mode.
3. With ``maxlife``, a first-seen date older than maxlife or over 24 h ahead makes the cookie
   OLD; else with ``maxidle`` the same test on the last-seen date makes it EXPIRED. Either way
   its server id is ignored and its dates forgotten. A date still counts when the cookie names
   no known server (HAProxy keeps it for the cookie it inserts next).
4. An empty server id is INVALID. Otherwise the servers are tried in configuration order
   (backups included): the first one whose id matches and that may take the request is chosen
   (direct; VALID when it runs and is not in MAINT, else DOWN). DRAIN keeps its persistent
   users; a DOWN server takes them only with ``option persist`` or ``force-persist``; a server
   in MAINT only with ``force-persist``. A match that may not take it marks the cookie DOWN
   and the search goes on. No match: INVALID, the request is balanced.
5. Several persistence cookies in one request: each is read in turn, but once one has chosen a
   server the later ones choose nothing (so a client is never bounced between servers). The
   log letter is set by the first cookie; a later one changes it only when it chooses a
   server, matches one that may not take it (DOWN), or is OLD or EXPIRED. Dates read from one
   cookie stay until another cookie's dates replace them. With ``ignore-persist`` no cookie
   chooses anything (UNUSED), but insert mode with ``indirect`` still strips them.
6. What the server receives: the header is rewritten only when needed (else it goes on as it
   came). Then spaces around every ``=`` are dropped; in insert mode with ``indirect`` every
   persistence cookie is removed, with the ``$Attributes`` after it, the other cookies staying
   in order (the header disappears when nothing is left); in prefix mode every persistence
   cookie holding ``~`` loses its ``SRV~`` part, whatever server it names.

Rules: writing the response
7. Responses 100-199 (but 101) are left alone.
8. Each server Set-Cookie for the persistence cookie (spaces around its ``=`` dropped, like all
   Set-Cookie headers): with ``preserve``, passed on (P) and nothing is inserted; in insert
   mode, removed (D); when the request was direct to the server that answered and ``indirect``
   is set, removed (D), but see the deliberate difference; in rewrite mode, its value replaced
   by the answering server's id (R); in prefix mode, ``SRV~`` put before its value (R); from a
   server without an id, passed on (P). With ``ignore-persist`` the response is not touched.
9. Insert mode adds ``Set-Cookie: NAME=SRV[|LAST[|FIRST]]; path=/`` then ``; domain=D`` per
   domain, ``; HttpOnly``, ``; Secure``, ``; ATTR`` per attr, at the end of the headers, when
   the request was not direct to the server that answered, or maxidle needs a last-seen date
   (none, or one already past), or maxlife needs a first-seen date, or a first-seen date must
   go (no maxlife); only for POST with ``postonly``; never with ``ignore-persist``. Dates
   present are kept (first-seen) or set to now (last-seen). A server without an id gets
   ``NAME=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/`` instead. Log: U when the client's
   cookie named that server already, else I.
10. ``nocache``: after an insertion into a cacheable response (``cacheability.py``), add
   ``Cache-Control: private``.

The deliberate difference (geoproxy's story: Tomcat behind ``cookie JSESSIONID prefix indirect
nocache``, users stuck on "Session Expired" after a restart until they deleted a cookie):
HAProxy drops the server's Set-Cookie of the application cookie whenever the request was
direct and ``indirect`` is set, so a new session id never reaches the client. geoproxy, in
prefix mode, drops it only when its value is one the client sent in this request; a new value
is forwarded prefixed (R). ``geoproxy check`` warns about ``prefix`` with ``indirect``.

A second, smaller one found while recording HAProxy 2.6: with ``option persist`` HAProxy also
sends a cookie's request to a server in MAINT; geoproxy keeps MAINT for ``force-persist`` only
(rule 4), as its specification asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from geoproxy.balance.view import ServerView
from geoproxy.config.model import CookieMode, CookiePolicy
from geoproxy.persistence import jvmroute
from geoproxy.persistence.cookie_request import read_cookie_request
from geoproxy.persistence.cookie_response import rewrite_cookie_response
from geoproxy.persistence.result import (
    KEEP,
    NO_PERSISTENCE,
    CookieStatus,
    Persistence,
    PersistenceRequest,
    RewrittenResponse,
    SetCookieStatus,
)


def read_request(
    policy: CookiePolicy | None,
    servers: Sequence[ServerView],
    request: PersistenceRequest,
    now: float,
) -> Persistence:
    """Read one request's persistence cookie (or route) for a backend.

    ``policy`` is the backend's cookie line (None: no persistence); ``servers`` every server of
    the backend in configuration order, backups included. Returns the server persistence asks
    for (None: balance), the cookie log letter, the Cookie header for the server, and what
    ``rewrite_response`` needs.
    """
    if policy is None:
        return NO_PERSISTENCE
    if policy.mode is CookieMode.ROUTE:
        return jvmroute.read_route_request(policy, servers, request)
    if policy.mode is CookieMode.PASSIVE:
        return read_passive_request(policy, servers, request, now)
    return read_cookie_request(policy, servers, request, now)


def read_passive_request(
    policy: CookiePolicy, servers: Sequence[ServerView], request: PersistenceRequest, now: float
) -> Persistence:
    """A bare ``cookie NAME`` line (HAProxy's passive mode, checked against haproxy 2.6): the
    cookie routes as in rewrite mode, nothing is changed in either direction, and the log shows
    no cookie flags."""
    routed = read_cookie_request(policy, servers, request, now)
    return dataclasses.replace(
        routed, upstream_cookie=KEEP, status=CookieStatus.NOT_APPLICABLE
    )


def rewrite_response(
    persistence: Persistence,
    server: ServerView,
    status: int,
    headers: list[tuple[str, str]],
    now: float,
) -> RewrittenResponse:
    """Apply persistence to the response ``server`` sent for the request ``persistence`` was
    read from. ``server`` is the one that answered (it differs from ``persistence.server``
    after a redispatch); ``headers`` keep their order and case, and come back as the same list
    when nothing changes."""
    policy = persistence.policy
    if policy is None:
        return RewrittenResponse(headers, SetCookieStatus.NOT_APPLICABLE)
    if policy.mode is CookieMode.ROUTE:
        return jvmroute.rewrite_route_response(policy, headers)
    if policy.mode is CookieMode.PASSIVE:
        return RewrittenResponse(headers, SetCookieStatus.NOT_APPLICABLE)
    return rewrite_cookie_response(persistence, server, status, headers, now)
