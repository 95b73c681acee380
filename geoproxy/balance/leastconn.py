"""``balance leastconn`` (HAProxy's ``lb_fwlc.c``).

Rules:
1. The ranking is every eligible server, LEAST_LOADED: the acquire script gives the request to
   the server with the lowest ``(inflight + 1) / weight`` among those with room, counted
   fleet-wide at that instant.
2. Ties go to the earlier candidate, so the candidate order starts one server further on each
   call: servers of equal load take turns, as HAProxy's tree re-queues a server behind its
   equals each time it is used ("round-robin is performed within groups of servers of the same
   load").
"""

from __future__ import annotations

from collections.abc import Sequence

from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.view import ServerView


class LeastConn:
    """``balance leastconn``: the least loaded server, equals in turn."""

    __slots__ = ("_turn",)

    def __init__(self) -> None:
        self._turn = 0

    @property
    def needs_request(self) -> bool:
        return False

    def rank(self, eligible: Sequence[ServerView], request: RequestKeys | None) -> Ranking:
        servers = eligible if isinstance(eligible, tuple) else tuple(eligible)
        start = self._turn % len(servers)
        self._turn = start + 1
        return Ranking(PickMode.LEAST_LOADED, servers[start:] + servers[:start])
