"""``balance roundrobin`` and ``balance static-rr`` (HAProxy's ``lb_fwrr.c`` and ``lb_map.c``).

Rules:
1. roundrobin is dynamic: it reads each call's weights, so a weight set at run time or ramped by
   slowstart counts from the next request on. It is the smooth weighted round robin of nginx:
   every server gains its weight, the one with the highest score (the earliest on ties) is
   picked and pays the total. Weights 5:1:1 give ``a a b a c a a``: no burst of ``a``.
2. Its ranking is every eligible server by score before the pick: the picked one, then the ones
   most owed a turn. The acquire script takes the first with room, so a full server is skipped
   for the next most owed, as HAProxy's ``fwrr_get_next_server`` skips saturated servers.
3. static-rr walks HAProxy's server map (``weightmap``) built from the configured weights:
   weights changed at run time are ignored, as HAProxy documents, and the map is rebuilt only
   when the eligible set changes. Its ranking is the map slot's server, then the servers met
   walking on through the map.
4. Each policy lives in one process for one backend; its state (scores, map position) is that
   process's own, as each HAProxy thread group's is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.tables import Binder, names
from geoproxy.balance.view import ServerView
from geoproxy.balance.weightmap import StaticMapBuilder


class RoundRobin:
    """``balance roundrobin``: smooth weighted round robin over the current weights."""

    __slots__ = ("_scores",)

    def __init__(self) -> None:
        self._scores: dict[str, int] = {}

    @property
    def needs_request(self) -> bool:
        return False

    def rank(self, eligible: Sequence[ServerView], request: RequestKeys | None) -> Ranking:
        scores = self._scores
        raised = []
        total = 0
        best, best_score = 0, 0
        for i, server in enumerate(eligible):
            score = scores.get(server.name, 0) + server.weight
            scores[server.name] = score
            raised.append(score)
            total += server.weight
            if i == 0 or score > best_score:
                best, best_score = i, score
        scores[eligible[best].name] = best_score - total
        # a stable sort keeps configuration order between equal scores, so the pick (the
        # earliest of the highest) comes first
        order = sorted(range(len(raised)), key=raised.__getitem__, reverse=True)
        return Ranking(PickMode.FIRST_WITH_ROOM, tuple([eligible[i] for i in order]))


class StaticRoundRobin:
    """``balance static-rr``: HAProxy's server map, walked one slot per request."""

    __slots__ = ("_binder", "_position")

    def __init__(self, configured: Mapping[str, int]) -> None:
        self._binder = Binder(PickMode.FIRST_WITH_ROOM, names, StaticMapBuilder(configured))
        self._position = 0

    @property
    def needs_request(self) -> bool:
        return False

    def rank(self, eligible: Sequence[ServerView], request: RequestKeys | None) -> Ranking:
        bound = self._binder.bind(eligible)
        table = bound.table
        slot = self._position % len(table)
        self._position = slot + 1
        return bound.ranking(table.order_from_slot(slot))
