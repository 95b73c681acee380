"""What a balancing policy is: a pure ranking of eligible servers, not a final choice.

Rules:
1. A policy never does I/O and never reads a clock; randomness comes from the ``random.Random``
   it was built with. It may keep state of its own (the round-robin position), per process.
2. A policy ranks; the fleet state layer decides. The Redis acquire script walks the ranking
   with the live fleet-wide counts and takes, atomically, either the first candidate with room
   (``PickMode.FIRST_WITH_ROOM``) or the least loaded one (``PickMode.LEAST_LOADED``: the lowest
   ``(inflight + 1) / weight``, ties to the earlier candidate). That split keeps every one of
   HAProxy's rules in Python, where it is unit-tested, and only the scarce, shared decision in
   the one Redis round trip.
3. ``eligible`` (see ``rank.py``) has already removed unusable servers and applied the backup
   rules; a policy receives that set, in configuration order, and returns a permutation or a
   subset of it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from geoproxy.balance.view import ServerView


class PickMode(enum.Enum):
    FIRST_WITH_ROOM = "first"
    LEAST_LOADED = "least"


@dataclass(frozen=True, slots=True)
class Ranking:
    mode: PickMode
    candidates: tuple[ServerView, ...]


@dataclass(frozen=True, slots=True)
class RequestKeys:
    """What the hashing policies read from a request.

    ``source`` is the client address, ``uri`` the request target as received (path and query),
    ``header`` looks a request header up by lower-case name (None when absent). Built only for
    policies whose ``needs_request`` is true. ``destination_port`` and ``server_name`` (a TLS
    ClientHello's SNI) serve ``balance hash`` in TCP proxies.
    """

    source: str
    uri: str
    header: Callable[[str], str | None]
    destination_port: int = 0
    server_name: str | None = None


class Policy(Protocol):
    """One backend's balancing algorithm, for one process."""

    @property
    def needs_request(self) -> bool:
        """True when ``rank`` reads ``RequestKeys`` (the hashing algorithms)."""
        ...

    def rank(self, eligible: Sequence[ServerView], request: RequestKeys | None) -> Ranking:
        """Rank ``eligible`` (non-empty, configuration order) for one request."""
        ...
