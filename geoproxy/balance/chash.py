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
   in the order met walking clockwise from there.
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
        return keys


class Ring:
    """The ring of one set of (name, weight) servers; positions follow their order."""

    __slots__ = ("keys", "walk")

    def __init__(self, servers: Sequence[tuple[str, int]], point_keys: PointKeys) -> None:
        points = []
        for position, (name, weight) in enumerate(servers):
            for key in point_keys.of(name, max(weight, 0) * POINTS_PER_WEIGHT):
                # the name breaks ties between colliding points, so the order stays
                # independent of the servers' positions
                points.append((key, name, position))
        points.sort()
        self.keys = [key for key, _, _ in points]
        self.walk = WalkOrders([position for _, _, position in points], len(servers))

    def __len__(self) -> int:
        return len(self.keys)

    def slot_for(self, h: int) -> int:
        """The point a 32-bit hash maps to (rule 3). The ring must not be empty."""
        keys = self.keys
        nxt = bisect_left(keys, h)
        if nxt == len(keys):
            nxt = 0
        prv = nxt - 1 if nxt else len(keys) - 1
        owners = self.walk.owners
        if owners[nxt] == owners[prv]:
            return nxt
        if (h - keys[prv]) & MASK32 <= (keys[nxt] - h) & MASK32:
            return prv
        return nxt
