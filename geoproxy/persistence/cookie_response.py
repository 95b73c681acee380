"""The response side of ``cookie NAME rewrite|insert|prefix``: what becomes of the server's
Set-Cookie for the persistence cookie, and the cookie geoproxy inserts. The rules are stated in
``cookies.py``; this module follows HAProxy 2.6's ``http_manage_server_side_cookies`` and the
insertion step of ``http_process_res_common``, plus geoproxy's one deliberate difference."""

from __future__ import annotations

from geoproxy.balance.view import ServerView
from geoproxy.config.model import CookieMode, CookiePolicy
from geoproxy.persistence.cacheability import is_cacheable
from geoproxy.persistence.cookie_dates import encode_date, encode_units
from geoproxy.persistence.cookie_header import parse_set_cookie
from geoproxy.persistence.cookie_request import DATE_DELIM, PREFIX_DELIM
from geoproxy.persistence.result import Persistence, RewrittenResponse, SetCookieStatus

REMOVAL = "=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"


def _rewrite_set_cookie(
    policy: CookiePolicy, persistence: Persistence, server: ServerView, direct: bool, value: str
) -> tuple[str | None, SetCookieStatus | None]:
    """One Set-Cookie value after persistence: (new value or None to drop it, status or None
    when it is not the persistence cookie)."""
    pair = parse_set_cookie(value)
    if pair is None:
        return value, None
    if persistence.ignore or pair.name != policy.name:
        return pair.render(), None
    if policy.preserve:
        return pair.render(), SetCookieStatus.PROVIDED
    if policy.mode is CookieMode.INSERT:
        return None, SetCookieStatus.DELETED
    if direct and policy.indirect and (
        policy.mode is not CookieMode.PREFIX or pair.value in persistence.app_values
    ):
        # The deliberate difference: in prefix mode only a value the client already has is
        # dropped; a new one (the application opened a new session) reaches the client.
        return None, SetCookieStatus.DELETED
    if server.cookie is None:
        return pair.render(), SetCookieStatus.PROVIDED
    if policy.mode is CookieMode.REWRITE:
        return pair.render(server.cookie), SetCookieStatus.REWRITTEN
    return pair.render(server.cookie + PREFIX_DELIM + pair.value), SetCookieStatus.REWRITTEN


def _needs_insert(policy: CookiePolicy, persistence: Persistence, direct: bool, now: int) -> bool:
    """Whether insert mode adds a Set-Cookie: the client lacks one for this server, or its
    dates must be added, refreshed or removed; only for POST with ``postonly``."""
    last, first = persistence.last_seen, persistence.first_seen
    refresh = (
        not direct
        or (bool(policy.maxidle or last) and (not last or last < now))
        or bool(policy.maxlife and not first)
        or bool(not policy.maxlife and first)
    )
    post_ok = not policy.postonly or persistence.method == "POST"
    return refresh and post_ok and not persistence.ignore


def inserted_cookie(policy: CookiePolicy, persistence: Persistence, server: ServerView,
                    now: int) -> str:
    """The Set-Cookie value insert mode adds for ``server`` (a removal for a server without
    an id): ``NAME=SRV[|LAST[|FIRST]]; path=/`` then domain, HttpOnly, Secure, attr."""
    if server.cookie is None:
        parts = [policy.name + REMOVAL]
    else:
        text = f"{policy.name}={server.cookie}"
        if policy.maxidle or policy.maxlife:
            text += DATE_DELIM + encode_date(now)
            if policy.maxlife:
                first = persistence.first_seen
                text += DATE_DELIM + (encode_units(first >> 2) if first else encode_date(now))
        parts = [text + "; path=/"]
    parts += [f"; domain={domain}" for domain in policy.domains]
    if policy.httponly:
        parts.append("; HttpOnly")
    if policy.secure:
        parts.append("; Secure")
    parts += [f"; {attr}" for attr in policy.attrs]
    return "".join(parts)


def rewrite_cookie_response(
    persistence: Persistence,
    server: ServerView,
    status: int,
    headers: list[tuple[str, str]],
    now: float,
) -> RewrittenResponse:
    """The response of ``server`` after persistence in rewrite, insert or prefix mode."""
    policy = persistence.policy
    assert policy is not None and policy.mode is not CookieMode.ROUTE
    if status < 200 and status != 101:
        return RewrittenResponse(headers, SetCookieStatus.NONE)
    direct = persistence.server is not None and persistence.server.name == server.name
    result = SetCookieStatus.NONE
    rewritten: list[tuple[str, str]] | None = None  # copied only once something changes
    for index, (name, value) in enumerate(headers):
        new: str | None = value
        if name.lower() == "set-cookie":
            new, found = _rewrite_set_cookie(policy, persistence, server, direct, value)
            if found is not None:
                result = found
        if rewritten is None:
            if new == value:
                continue
            rewritten = headers[:index]
        if new is not None:
            rewritten.append((name, new))
    out = headers if rewritten is None else rewritten
    seconds = int(now)
    if (
        policy.mode is CookieMode.INSERT
        and not (policy.preserve and result is SetCookieStatus.PROVIDED)
        and _needs_insert(policy, persistence, direct, seconds)
    ):
        if out is headers:
            out = list(headers)
        out.append(("Set-Cookie", inserted_cookie(policy, persistence, server, seconds)))
        updated = server.cookie is not None and direct
        result = SetCookieStatus.UPDATED if updated else SetCookieStatus.INSERTED
        if policy.nocache and is_cacheable(persistence.method, status, headers):
            out.append(("Cache-Control", "private"))
    return RewrittenResponse(out, result)
