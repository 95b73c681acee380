"""A backend's leastconn pool as ``acquire.lua`` knows it: the servers a leastconn pick may
take, with their effective weights and maxconn (no I/O here).

Rules:
1. The pool is the eligible set of one snapshot (``balance.rank.eligible``). Its digest names
   its content, the same in every process (a hash of the text, never Python's ``hash``); its
   version is the Redis time of the snapshot, so that of two workers' pools the fresher one
   wins in Redis and an older one never replaces it (lib/least_index.lua).
2. The table (every member's name, weight and maxconn) travels only until Redis is known to
   hold this pool or a newer one; after that a leastconn request costs a few bytes, whatever the
   number of servers.
3. Built once per eligible tuple (a snapshot refresh), never per request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from geoproxy.balance.view import ServerView


@dataclass(slots=True)
class Pool:
    """One eligible set, ready to send. ``members`` is the very tuple the policy ranked (the
    cache key); ``held`` turns true once Redis answered that it holds this pool,
    ``superseded`` once it answered that it holds a newer one (from a fresher snapshot)."""

    members: tuple[ServerView, ...]
    digest: str
    version: int
    table: list[Any] = field(default_factory=list)
    held: bool = False
    superseded: bool = False

    def args(self) -> list[Any]:
        """``acquire.lua``'s pool section: digest, version, then the table while Redis may
        not have it (rule 2)."""
        if self.held or self.superseded:
            return [self.digest, self.version, 0]
        return [self.digest, self.version, len(self.members), *self.table]

    def answered(self, state: int) -> None:
        """What ``acquire.lua`` said of this pool: 0 held, 1 superseded, 2 missing."""
        self.held = state == 0
        self.superseded = state == 1


NO_POOL_ARGS: tuple[Any, ...] = ("", 0, 0)


def build_pool(members: tuple[ServerView, ...], version: int) -> Pool:
    """The pool of ``members`` (non-empty, every weight above 0) seen at ``version``."""
    table: list[Any] = []
    for server in members:
        table += (server.name, server.weight, server.maxconn)
    text = "\n".join(f"{s.name} {s.weight} {s.maxconn}" for s in members)
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return Pool(members, digest, version, table)
