"""The values persistence takes and gives: one request in, one decision out, one response
rewrite. Frozen, so that nothing of one request can leak into the next one on the same
keep-alive connection."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from geoproxy.balance.view import ServerView
from geoproxy.config.model import CookiePolicy


class CookieStatus(enum.Enum):
    """What the client's persistence cookie did; the value is the third letter of HAProxy's
    ``%tsc`` termination state."""

    NOT_APPLICABLE = "-"  # the backend has no cookie line
    NONE = "N"  # no persistence cookie
    INVALID = "I"  # it names no known server (or an empty one)
    DOWN = "D"  # it names a server that cannot take it (sent there only when persisting)
    VALID = "V"  # it names a server that took the request
    EXPIRED = "E"  # its last-seen date is older than maxidle (or over a day ahead)
    OLD = "O"  # its first-seen date is older than maxlife (or over a day ahead)
    UNUSED = "U"  # present, but something else chose the server (ignore-persist)


class SetCookieStatus(enum.Enum):
    """What happened to the persistence cookie in the response; the fourth letter of
    ``%tsc``."""

    NOT_APPLICABLE = "-"
    NONE = "N"  # none from the server, none inserted
    PROVIDED = "P"  # the server's, passed on as it was
    DELETED = "D"  # the server's, removed
    INSERTED = "I"  # geoproxy inserted one (replacing the server's, if any)
    UPDATED = "U"  # re-inserted for the same server, to refresh its dates
    REWRITTEN = "R"  # the server's, with the server id written in (rewrite, prefix)


class Keep(enum.Enum):
    """Marks a header that goes on exactly as received: the common case costs nothing."""

    AS_IS = "as-is"


KEEP = Keep.AS_IS


@dataclass(frozen=True, slots=True)
class PersistenceRequest:
    """What persistence reads from one request.

    ``cookie`` is every Cookie header value of the request, several joined by ``"; "`` (None:
    no Cookie header). ``target`` is the request target as received (path, ``;params``,
    ``?query``): route mode reads ``;jsessionid=`` and ``?jsessionid=`` there. ``persist`` is
    the backend's ``option persist``; ``force_persist`` / ``ignore_persist`` say whether a
    ``force-persist`` / ``ignore-persist`` rule of the backend matched this request.
    """

    method: str
    cookie: str | None = None
    target: str = "/"
    persist: bool = False
    force_persist: bool = False
    ignore_persist: bool = False


@dataclass(frozen=True, slots=True)
class Persistence:
    """The request-side decision.

    ``server`` is the server persistence sends the request to ("direct"), or None to let the
    balancing policy choose. ``upstream_cookie`` is the Cookie header the server must receive:
    ``KEEP`` (as the client sent it), None (remove it), or the new value. ``first_seen`` /
    ``last_seen`` are the cookie's dates in seconds (0: none), ``app_values`` the values of
    the application cookie the server received in prefix mode; the response side needs them.
    """

    policy: CookiePolicy | None
    server: ServerView | None
    status: CookieStatus
    upstream_cookie: str | None | Keep = KEEP
    method: str = "GET"
    ignore: bool = False
    first_seen: int = 0
    last_seen: int = 0
    app_values: tuple[str, ...] = ()

    @property
    def is_direct(self) -> bool:
        return self.server is not None


@dataclass(frozen=True, slots=True)
class RewrittenResponse:
    """The response headers after persistence (the very list it was given when nothing
    changed) and what happened to the persistence cookie."""

    headers: list[tuple[str, str]]
    status: SetCookieStatus


NO_PERSISTENCE = Persistence(policy=None, server=None, status=CookieStatus.NOT_APPLICABLE)
