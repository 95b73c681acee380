"""``balance random[(<draws>)]`` (HAProxy's ``get_server_rnd``): the power of N random choices.

Rules:
1. Each request draws ``draws`` servers at random, each draw weighted by the current weights
   (HAProxy draws a random key on its consistent ring, where a server's share of the ring is
   its weight). The same server drawn twice counts once.
2. The ranking is the distinct drawn servers, LEAST_LOADED: the least loaded of them gets the
   request. With the default of 2 draws the most loaded server of the farm never gets a new
   request while another is less loaded; more draws converge towards leastconn.
3. If none of the drawn servers has room the request queues, even though an undrawn server
   might have room: HAProxy does the same ("pretend we have none so that we reach the
   backend's queue").
4. Randomness comes from the ``random.Random`` the policy is built with, and only from it.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.tables import names_and_weights
from geoproxy.balance.view import ServerView


class RandomDraws:
    """``balance random(draws)``: the least loaded of ``draws`` weighted random servers."""

    __slots__ = ("_draws", "_rng", "_key", "_bounds", "_total")

    def __init__(self, draws: int, rng: random.Random) -> None:
        if draws < 1:
            raise ValueError(f"random needs at least one draw, got {draws}")
        self._draws = draws
        self._rng = rng
        self._key: tuple[tuple[str, int], ...] = ()
        self._bounds: list[int] = []
        self._total = 0

    @property
    def needs_request(self) -> bool:
        return False

    def rank(self, eligible: Sequence[ServerView], request: RequestKeys | None) -> Ranking:
        key = names_and_weights(eligible)
        if key != self._key:
            # cumulative weights: server i owns the draws in [bounds[i-1], bounds[i])
            self._bounds = list(accumulate(server.weight for server in eligible))
            self._total = self._bounds[-1]
            self._key = key
        bounds, total, randrange = self._bounds, self._total, self._rng.randrange
        drawn: list[ServerView] = []
        for _ in range(self._draws):
            server = eligible[bisect_right(bounds, randrange(total))]
            if not any(server is other for other in drawn):
                drawn.append(server)
        return Ranking(PickMode.LEAST_LOADED, tuple(drawn))
