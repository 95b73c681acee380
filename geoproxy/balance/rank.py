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

from collections.abc import Mapping

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.view import AdminState, BackendView, OperState, ServerView

_UP, _GOING_DOWN, _READY = OperState.UP, OperState.GOING_DOWN, AdminState.READY


def eligible(view: BackendView, allbackups: bool) -> tuple[ServerView, ...]:
    """The servers a balancing policy may rank for a new, non-persistent request.

    Returns them in configuration order; empty when nothing is usable.
    """
    primaries: list[ServerView] = []
    backups: list[ServerView] = []
    for s in view.servers:
        # ServerView.is_usable, spelt out: this runs per request and properties cost 5x more
        if s.weight > 0 and s.admin is _READY and (s.oper is _UP or s.oper is _GOING_DOWN):
            (backups if s.backup else primaries).append(s)
    if primaries:
        return tuple(primaries)
    if allbackups or not backups:
        return tuple(backups)
    return (backups[0],)


def decide(ranking: Ranking, counts: Mapping[str, int] | None = None) -> ServerView | None:
    """The server the acquire script takes from ``ranking`` (rule 2), or None if all are full.

    ``counts``: the in-flight count of each server (absent: 0), when they are fresher than the
    candidates' own (``ServerView.inflight``, as of the snapshot)."""
    if counts is None:
        counts = {server.name: server.inflight for server in ranking.candidates}
    get = counts.get
    if ranking.mode is PickMode.FIRST_WITH_ROOM:
        for server in ranking.candidates:
            if server.maxconn == 0 or get(server.name, 0) < server.maxconn:
                return server
        return None
    best: ServerView | None = None
    best_load = best_weight = 0
    for server in ranking.candidates:
        load = get(server.name, 0) + 1
        # lower (inflight + 1) / weight, without division: weight 0 loses to any weight above 0
        if (server.maxconn == 0 or load <= server.maxconn) and (
            best is None or load * best_weight < best_load * server.weight
        ):
            best, best_load, best_weight = server, load, server.weight
    return best
