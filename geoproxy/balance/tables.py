"""Per-process caches that keep the table-driven policies cheap per request.

Rules:
1. A table (a server map, a ring) depends only on the eligible servers' names and weights,
   so it is built once per such set and kept, for the last ``TABLE_LIMIT`` sets seen (slow
   starts walk through many weight sets; an unbounded cache would grow with them).
2. A ranking holds the very ``ServerView`` objects of the call's eligible tuple (their counts
   are what ``decide`` and the stats read), so rankings are only reused while the caller passes
   that same tuple again; for a new tuple they are rebuilt from the cached table.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter
from typing import Generic, Protocol, TypeVar

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.view import ServerView

TABLE_LIMIT = 32

_NAME = attrgetter("name")
_NAME_WEIGHT = attrgetter("name", "weight")


def names(eligible: Sequence[ServerView]) -> tuple[str, ...]:
    return tuple(map(_NAME, eligible))


def names_and_weights(eligible: Sequence[ServerView]) -> tuple[tuple[str, int], ...]:
    return tuple(map(_NAME_WEIGHT, eligible))


Order = tuple[int, ...]
"""A ranking as positions in the eligible tuple."""


class Table(Protocol):
    """What a table-driven policy walks: a ranking order for each of its slots."""

    def __len__(self) -> int: ...

    def order_from_slot(self, slot: int) -> Order: ...


TableT = TypeVar("TableT", bound=Table)


class Bound(Generic[TableT]):
    """A table together with one eligible tuple: the rankings it yields, built on first use."""

    __slots__ = ("eligible", "table", "_mode", "_rankings")

    def __init__(self, eligible: tuple[ServerView, ...], table: TableT, mode: PickMode) -> None:
        self.eligible = eligible
        self.table = table
        self._mode = mode
        self._rankings: dict[Order, Ranking] = {}

    def ranking(self, order: Order) -> Ranking:
        """The ranking of the eligible servers at the positions ``order`` gives."""
        ranking = self._rankings.get(order)
        if ranking is None:
            eligible = self.eligible
            ranking = Ranking(self._mode, tuple([eligible[i] for i in order]))
            self._rankings[order] = ranking
        return ranking


class Binder(Generic[TableT]):
    """Finds (or builds) the table for an eligible set and binds it to the call's tuple."""

    __slots__ = ("_mode", "_key", "_build", "_tables", "_bound")

    def __init__(
        self,
        mode: PickMode,
        key: Callable[[Sequence[ServerView]], Hashable],
        build: Callable[[Sequence[ServerView]], TableT],
    ) -> None:
        self._mode = mode
        self._key = key
        self._build = build
        self._tables: dict[Hashable, TableT] = {}
        self._bound: Bound[TableT] | None = None

    def bind(self, eligible: Sequence[ServerView]) -> Bound[TableT]:
        bound = self._bound
        if bound is not None and bound.eligible is eligible:
            return bound
        servers = eligible if isinstance(eligible, tuple) else tuple(eligible)
        key = self._key(servers)
        table = self._tables.get(key)
        if table is None:
            if len(self._tables) >= TABLE_LIMIT:
                self._tables.clear()
            table = self._build(servers)
            self._tables[key] = table
        bound = Bound(servers, table, self._mode)
        self._bound = bound
        return bound
