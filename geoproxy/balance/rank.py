"""Which servers may take a new request, and which one a ranking gives it to.

Rules:
1. ``eligible``: the usable primaries (running, READY, weight above 0), in configuration
   order. Only when there is none, the usable backups: the first one in configuration order,
   or all of them with ``option allbackups`` (HAProxy's ``recount_servers``/``fbck``).
2. ``decide`` is the pure-Python twin of the Redis acquire script: the script walks the same
   ranking with live fleet-wide counts and must take the same server ``decide`` takes when the
   counts are those of the ranking's views.
   - FIRST_WITH_ROOM: the first candidate with room.
   - LEAST_LOADED: among candidates with room, the lowest ``(inflight + 1) / weight``; ties
     go to the earlier candidate. Loads are compared by cross-multiplying
     (``(a.inflight + 1) * b.weight < (b.inflight + 1) * a.weight``), in integers, so the
     script can compare exactly too; a weight of 0 then counts as an infinite load.
   - None when no candidate has room (the request queues).
"""

from __future__ import annotations

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.view import BackendView, ServerView


def eligible(view: BackendView, allbackups: bool) -> tuple[ServerView, ...]:
    """The servers a balancing policy may rank for a new, non-persistent request.

    Returns them in configuration order; empty when nothing is usable.
    """
    primaries = tuple(s for s in view.servers if not s.backup and s.is_usable)
    if primaries:
        return primaries
    backups = (s for s in view.servers if s.backup and s.is_usable)
    if allbackups:
        return tuple(backups)
    first = next(backups, None)
    return () if first is None else (first,)


def decide(ranking: Ranking) -> ServerView | None:
    """The server the acquire script takes from ``ranking`` (rule 2), or None if all are full."""
    if ranking.mode is PickMode.FIRST_WITH_ROOM:
        for server in ranking.candidates:
            if server.has_room:
                return server
        return None
    best: ServerView | None = None
    for server in ranking.candidates:
        if server.has_room and (best is None or _is_less_loaded(server, best)):
            best = server
    return best


def _is_less_loaded(a: ServerView, b: ServerView) -> bool:
    """``(a.inflight + 1) / a.weight < (b.inflight + 1) / b.weight``, without division."""
    return (a.inflight + 1) * b.weight < (b.inflight + 1) * a.weight
