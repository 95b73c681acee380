"""The request side of ``cookie NAME rewrite|insert|prefix``: which server the client's cookie
names, and the Cookie header the server receives. The rules are stated in ``cookies.py``; this
module follows HAProxy 2.6's ``http_manage_client_side_cookies`` step by step, including its
treatment of several persistence cookies in one request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from geoproxy.balance.view import AdminState, ServerView
from geoproxy.config.model import CookieMode, CookiePolicy
from geoproxy.persistence.cookie_dates import decode_date
from geoproxy.persistence.cookie_header import SPHT, Segment, segments
from geoproxy.persistence.result import (
    KEEP,
    CookieStatus,
    Keep,
    Persistence,
    PersistenceRequest,
)

PREFIX_DELIM = "~"
DATE_DELIM = "|"
FUTURE_SLACK = 86400  # dates further ahead than a day are not trusted


def _s32(value: int) -> int:
    """``value`` as HAProxy's ``(signed)`` cast of an unsigned 32-bit difference sees it."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def may_persist(server: ServerView, request: PersistenceRequest) -> bool:
    """Whether a cookie naming ``server`` sends the request there.

    A running server not in MAINT (DRAIN included) always takes it; ``force-persist`` sends it
    to any server; ``option persist`` to a DOWN one but not to one in MAINT (HAProxy 2.6 sends
    it to MAINT too: geoproxy keeps an operator's maintenance, as its specification says).
    """
    if server.accepts_persistent or request.force_persist:
        return True
    return request.persist and server.admin is not AdminState.MAINT


def match_server(
    servers: Sequence[ServerView], server_id: str, request: PersistenceRequest
) -> tuple[ServerView | None, bool]:
    """The first server, in configuration order, whose id is ``server_id`` and that may take
    the request; and whether a matching server had to be passed over (the cookie is DOWN)."""
    refused = False
    for server in servers:
        if server.cookie == server_id:
            if may_persist(server, request):
                return server, refused
            refused = True
    return None, refused


@dataclass(slots=True)
class _Judge:
    """The transaction-wide state HAProxy keeps while it reads the cookies of one request."""

    policy: CookiePolicy
    servers: Sequence[ServerView]
    request: PersistenceRequest
    now: int
    status: CookieStatus = CookieStatus.NONE
    server: ServerView | None = None
    first_seen: int = 0
    last_seen: int = 0

    def server_id(self, value: str) -> str:
        """The server id part of a persistence cookie's value; reads its dates on the way."""
        if self.policy.mode is CookieMode.PREFIX:
            delim = value.find(PREFIX_DELIM)
            return value if delim < 0 else value[:delim]
        bar = value.find(DATE_DELIM)
        if bar < 0:
            return value
        last = decode_date(value[bar + 1 :])
        if last:
            self.last_seen = last
        bar2 = value.find(DATE_DELIM, bar + 1)
        if bar2 >= 0 and len(value) - bar2 > 5:
            first = decode_date(value[bar2 + 1 :])
            if first:
                self.first_seen = first
        return value[:bar]

    def expire(self) -> bool:
        """Apply maxlife, then maxidle, to the dates read so far; True when the cookie is
        now to be ignored (its dates are then forgotten)."""
        maxlife = int(self.policy.maxlife or 0)
        maxidle = int(self.policy.maxidle or 0)
        if self.first_seen and maxlife and (
            _s32(self.now - self.first_seen) > maxlife
            or _s32(self.first_seen - self.now) > FUTURE_SLACK
        ):
            self.status = CookieStatus.OLD
        elif self.last_seen and maxidle and (
            _s32(self.now - self.last_seen) > maxidle
            or _s32(self.last_seen - self.now) > FUTURE_SLACK
        ):
            self.status = CookieStatus.EXPIRED
        else:
            return False
        self.first_seen = self.last_seen = 0
        return True

    def judge(self, value: str) -> None:
        """Read one persistence cookie of the request and maybe assign its server."""
        server_id = self.server_id(value)
        if self.expire():
            server_id = ""
        found = None
        if server_id and not self.request.ignore_persist and self.server is None:
            found, refused = match_server(self.servers, server_id, self.request)
            if found is not None:
                up = found.accepts_persistent
                self.status = CookieStatus.VALID if up else CookieStatus.DOWN
                self.server = found
            elif refused:
                self.status = CookieStatus.DOWN
        if found is None and self.status is CookieStatus.NONE:
            skipped = self.request.ignore_persist or self.server is not None
            self.status = CookieStatus.UNUSED if skipped else CookieStatus.INVALID


@dataclass(slots=True)
class _Rebuild:
    """The Cookie header being rewritten, cookie by cookie, as HAProxy edits it in place:
    ``entries`` are (delimiter before, text); a run of removed cookies starts at ``cut``."""

    entries: list[tuple[str, str]] = field(default_factory=list)
    cut: int | None = None
    preserve: bool = False

    def add(self, seg: Segment, header: str, text: str) -> None:
        delim = header[seg.start - 1] if seg.start > 0 else ""
        self.entries.append((delim, text))

    def keep(self, seg: Segment, header: str, text: str) -> None:
        """A cookie that stays: it closes a pending run of removed cookies."""
        self.preserve = True
        self.add(seg, header, text)
        if self.cut is not None:
            self._remove_run(self.cut, len(self.entries) - 1)
            self.cut = None

    def remove(self, seg: Segment, header: str, text: str) -> None:
        self.add(seg, header, text)
        if self.cut is None:
            self.cut = len(self.entries) - 1

    def _remove_run(self, first: int, kept: int) -> None:
        delim, text = self.entries[kept]
        if first == 0 or (first == 1 and self.entries[0][1] == ""):
            self.entries[0:kept + 1] = [("", text.lstrip(SPHT))]
            return
        before_delim, before = self.entries[first - 1]
        self.entries[first - 1] = (before_delim, before.rstrip(SPHT))
        self.entries[first:kept + 1] = [(delim, " " + text.lstrip(SPHT))]

    def result(self) -> str | None:
        if self.cut is not None:
            if not self.preserve:
                return None
            del self.entries[self.cut :]
        # A field value has no surrounding whitespace (RFC 9110 5.5); HAProxy may leave a
        # space before a cut, which no server sees.
        text = "".join(delim + entry for delim, entry in self.entries).strip(SPHT)
        return text or None


def _is_untouched(policy: CookiePolicy, header: str) -> bool:
    """True when HAProxy would neither find the persistence cookie in ``header`` nor respace
    anything: the fast path of every request without the cookie."""
    return (
        policy.name not in header
        and "\t" not in header
        and " =" not in header
        and "= " not in header
    )


def read_cookie_request(
    policy: CookiePolicy, servers: Sequence[ServerView], request: PersistenceRequest, now: float
) -> Persistence:
    """The decision for one request in rewrite, insert or prefix mode (see ``cookies.py``)."""
    header = request.cookie
    if not header or _is_untouched(policy, header):
        return Persistence(policy, None, CookieStatus.NONE, KEEP, request.method,
                           request.ignore_persist)
    judge = _Judge(policy, servers, request, int(now))
    rebuild = _Rebuild()
    strip = policy.mode is CookieMode.INSERT and policy.indirect
    prefix = policy.mode is CookieMode.PREFIX
    app_values: list[str] = []
    for seg in segments(header):
        if seg.is_attribute:
            rebuild.add(seg, header, seg.raw)
        elif not seg.is_cookie or seg.name != policy.name:
            rebuild.keep(seg, header, seg.normalised())
        else:
            judge.judge(seg.value)
            delim = seg.value.find(PREFIX_DELIM) if prefix else -1
            if delim >= 0:
                app_values.append(seg.value[delim + 1 :])
                rebuild.keep(seg, header, seg.normalised(seg.value[delim + 1 :]))
            elif prefix:
                app_values.append(seg.value)
                rebuild.add(seg, header, seg.normalised())
            elif strip:
                rebuild.remove(seg, header, seg.normalised())
            else:
                rebuild.add(seg, header, seg.normalised())
    rebuilt = rebuild.result()
    upstream: str | None | Keep = KEEP if rebuilt == header else rebuilt
    return Persistence(
        policy, judge.server, judge.status, upstream, request.method, request.ignore_persist,
        judge.first_seen, judge.last_seen, tuple(app_values),
    )
