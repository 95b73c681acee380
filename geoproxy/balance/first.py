"""``balance first`` (HAProxy's ``lb_fas.c``).

Rules:
1. The first server with a free slot takes the request: the ranking is the eligible servers in
   configuration order (HAProxy orders by server id, which defaults to that position), taken
   FIRST_WITH_ROOM. Once a server reaches its ``maxconn`` the next one is used.
2. Weights are ignored, as HAProxy documents; weight 0 servers are not eligible in the first
   place. Without ``maxconn`` every request goes to the first server, which is the point.
"""

from __future__ import annotations

from collections.abc import Sequence

from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.view import ServerView


class First:
    """``balance first``: fill the servers in configuration order."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: Ranking | None = None

    @property
    def needs_request(self) -> bool:
        return False

    def rank(self, eligible: Sequence[ServerView], request: RequestKeys | None) -> Ranking:
        last = self._last
        if last is not None and last.candidates is eligible:
            return last
        servers = eligible if isinstance(eligible, tuple) else tuple(eligible)
        ranking = Ranking(PickMode.FIRST_WITH_ROOM, servers)
        self._last = ranking
        return ranking
