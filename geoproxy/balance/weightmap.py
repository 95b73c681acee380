"""HAProxy's server map (``lb_map.c``): the table behind static-rr and map-based hashing.

Rules:
1. The map has one slot per unit of weight, ``sum(weights)`` slots, filled by HAProxy's
   ``recalc_server_map``: each round every server gains its weight, the one whose
   ``(score + total) / total`` is highest (the earliest on ties) takes the slot and pays
   ``total``. So the map is spread out, respects weights, and its slot 0 is always the first
   server, as in HAProxy.
2. Weights are the configured ones divided by their greatest common divisor over every
   configured server (HAProxy's ``wmult``): a map is only rebuilt when the set of eligible
   servers changes, never when a weight changes at run time (the algorithms are static).
3. A slot's ranking is its server first, then every other server in the order in which they
   next appear walking forward through the map (wrapping): that is the order in which
   HAProxy's ``map_get_server_rr`` would skip to them when the first ones are full.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from math import gcd

from geoproxy.balance.view import ServerView


def weight_divisor(weights: Sequence[int]) -> int:
    """The greatest common divisor of the non-zero ``weights`` (1 when all are 0)."""
    divisor = 0
    for weight in weights:
        if weight > 0:
            divisor = gcd(divisor, weight)
    return divisor or 1


def _c_div(a: int, b: int) -> int:
    """C's integer division (truncates toward zero), as ``recalc_server_map`` divides."""
    q = abs(a) // b
    return q if a >= 0 else -q


def build_map(weights: Sequence[int]) -> tuple[int, ...]:
    """HAProxy's ``recalc_server_map``: slot -> position in ``weights``.

    ``weights`` are already reduced (rule 2); a weight of 0 never gets a slot. Returns an
    empty map when every weight is 0.
    """
    total = sum(w for w in weights if w > 0)
    if total == 0:
        return ()
    live = [(i, w) for i, w in enumerate(weights) if w > 0]
    if total == 1:
        return (live[0][0],)
    scores = [0] * len(weights)
    slots = []
    for _ in range(total):
        best, best_v = -1, 0
        for i, w in live:
            scores[i] += w
            v = _c_div(scores[i] + total, total)
            if best < 0 or v > best_v:
                best, best_v = i, v
        slots.append(best)
        scores[best] -= total
    return tuple(slots)


class WalkOrders:
    """For each slot of a map (or a ring), the servers in the order a forward walk meets them.

    ``owners[slot]`` is a server position; positions run from 0 to ``count - 1``. Orders are
    computed on first use and kept: a hashed backend ends up asking for most slots, but each
    costs ``count`` binary searches once.
    """

    __slots__ = ("owners", "_occurrences", "_orders")

    def __init__(self, owners: Sequence[int], count: int) -> None:
        self.owners = tuple(owners)
        occurrences: list[list[int]] = [[] for _ in range(count)]
        for slot, owner in enumerate(self.owners):
            occurrences[owner].append(slot)
        self._occurrences = [occ for occ in occurrences if occ]
        self._orders: dict[int, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.owners)

    def order(self, slot: int) -> tuple[int, ...]:
        """Server positions by distance, walking forward from ``slot`` (its owner first)."""
        order = self._orders.get(slot)
        if order is None:
            order = self._walk(slot)
            self._orders[slot] = order
        return order

    def _walk(self, slot: int) -> tuple[int, ...]:
        size = len(self.owners)
        distances = []
        for occ in self._occurrences:
            i = bisect_left(occ, slot)
            ahead = occ[i] if i < len(occ) else occ[0] + size
            distances.append((ahead - slot, self.owners[occ[0]]))
        distances.sort()
        return tuple(owner for _, owner in distances)


class ServerMap:
    """The map of one set of reduced weights; positions follow their order."""

    __slots__ = ("walk",)

    def __init__(self, weights: Sequence[int]) -> None:
        self.walk = WalkOrders(build_map(weights), len(weights))

    def __len__(self) -> int:
        return len(self.walk)

    def order_from_slot(self, slot: int) -> tuple[int, ...]:
        return self.walk.order(slot)

    def order_for_hash(self, h: int) -> tuple[int, ...]:
        """HAProxy's ``map_get_server_hash`` (slot ``hash % total weight``), then the walk."""
        return self.walk.order(h % len(self.walk))


class StaticMapBuilder:
    """Builds the server map of an eligible set from the configured weights (rule 2)."""

    __slots__ = ("_configured", "_divisor")

    def __init__(self, configured: Mapping[str, int]) -> None:
        self._configured = dict(configured)
        self._divisor = weight_divisor(list(configured.values()))

    def __call__(self, eligible: Sequence[ServerView]) -> ServerMap:
        weights = []
        for server in eligible:
            configured = self._configured.get(server.name)
            # never expected: a server unknown to the configuration weighs what the view
            # says; one configured with weight 0 that an operator enabled gets one slot
            weight = server.weight if configured is None else configured // self._divisor
            weights.append(max(weight, 1))
        return ServerMap(weights)
