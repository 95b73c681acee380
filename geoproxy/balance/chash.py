"""The consistent-hashing ring (``hash-type consistent``, HAProxy's ``lb_chash.c``).

Rules:
1. Each server owns ``weight * POINTS_PER_WEIGHT`` points on a 32-bit ring (HAProxy puts
   ``eweight = weight * BE_WEIGHT_SCALE`` nodes in its tree). A point's position depends only
   on the server's name and the point's number, never on other servers: adding, removing or
   losing a server moves only the keys that server owned or now owns, and a weight change
   moves only keys at the points that appear or disappear.
2. HAProxy keys a server's points by its numeric id; geoproxy keys them by name, so that a
   reordered or extended configuration keeps every mapping (HAProxy's manual warns that its
   ids must stay equal across load balancers; names are what people keep equal).
3. A hash goes to the closer of the two points around it (HAProxy's
   ``chash_get_server_hash``: the point before wins a tie). The fallbacks are the other servers
   by the distance of their own closest point: the second is where the key goes if the first
   goes down, and it is the server HAProxy's ``hash-balance-factor`` moves a key to when the
   first is too loaded (it skips such servers in both directions and takes the closer).
4. Only the eligible servers are on the ring: a server that is down simply has no points,
   which gives the same mapping as skipping its points on a ring of every configured server.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Sequence

from geoproxy.balance.hashfuncs import MASK32, full_hash
from geoproxy.balance.weightmap import WalkOrders

POINTS_PER_WEIGHT = 16
RING_SIZE = 1 << 32
ORDER_MEMO_LIMIT = 4096


class PointKeys:
    """The ring positions of each server name's points, computed once per process."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[str, list[int]] = {}

    def of(self, name: str, count: int) -> list[int]:
        """The first ``count`` point positions of server ``name``."""
        keys = self._keys.setdefault(name, [])
        encoded = name.encode("utf-8", "surrogateescape")
        while len(keys) < count:
            keys.append(full_hash(zlib.crc32(b"%s-%d" % (encoded, len(keys))) & MASK32))
        return keys[:count]


class Ring:
    """The ring of one set of (name, weight) servers; positions follow their order."""

    __slots__ = ("walk", "_server_keys", "_by_hash")

    def __init__(self, servers: Sequence[tuple[str, int]], point_keys: PointKeys) -> None:
        points = []
        for position, (name, weight) in enumerate(servers):
            for key in point_keys.of(name, max(weight, 0) * POINTS_PER_WEIGHT):
                # the name breaks ties between colliding points, so the order stays
                # independent of the servers' positions
                points.append((key, name, position))
        points.sort()
        self.walk = WalkOrders([position for _, _, position in points], len(servers))
        keys_of: list[list[int]] = [[] for _ in servers]
        for key, _, position in points:
            keys_of[position].append(key)
        # each server's points with its last one repeated one turn before and its first one
        # turn after, so a lookup needs no wrap-around test
        self._server_keys = [
            (position, [keys[-1] - RING_SIZE, *keys, keys[0] + RING_SIZE])
            for position, keys in enumerate(keys_of)
            if keys
        ]
        self._by_hash: dict[int, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.walk)

    def order_from_slot(self, slot: int) -> tuple[int, ...]:
        """The servers met walking clockwise from point ``slot`` (the round-robin fallback)."""
        return self.walk.order(slot)

    def order_for_hash(self, h: int) -> tuple[int, ...]:
        """Every server by the distance from ``h`` to its closest point (rule 3)."""
        order = self._by_hash.get(h)
        if order is None:
            if len(self._by_hash) >= ORDER_MEMO_LIMIT:
                self._by_hash.clear()
            order = self._nearest_first(h)
            self._by_hash[h] = order
        return order

    def _nearest_first(self, h: int) -> tuple[int, ...]:
        distances = []
        for position, keys in self._server_keys:
            i = bisect_left(keys, h)
            after = keys[i] - h
            before = h - keys[i - 1]
            # the point before wins a tie, as in chash_get_server_hash (dp <= dn)
            distances.append((before, 0, position) if before <= after else (after, 1, position))
        distances.sort()
        return tuple([position for _, _, position in distances])
