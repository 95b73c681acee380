"""One entry of a stick table as a worker sees it, and what a sync carries for it (pure).
The rules are ``table.py``'s."""

from __future__ import annotations

from dataclasses import dataclass, field

USE_REFRESH_MS = 1000  # a worker republishes a non-zero gauge (and the entry's expiry) this often
USE_STALE_MS = 3000  # a gauge share older than this is a dead worker's, and no longer counts
HOT_WINDOW_MS = 1000  # an entry used twice within this is read again at every sync ...
HOT_LIMIT = 64  # ... at most this many per sync, the most recently used first
Buckets = dict[str, dict[int, int]]  # rate -> period start (ms) -> events


def period_start(anchor: int, period: int, now: int) -> int:
    """The start of the period holding ``now`` on the grid laid from ``anchor``."""
    if now <= anchor:
        return anchor
    return anchor + (now - anchor) // period * period


class Entry:
    """One key of the table as this worker sees it (rule 1). ``exists`` is None until a sync
    answered for it; ``server`` is the persistence entry's server a read found."""

    __slots__ = ("key", "fleet", "buckets", "anchor", "anchor_sent", "pending", "pending_buckets",
                 "cleared", "tags_set", "inflight", "inflight_sets", "inflight_buckets", "mine",
                 "published", "others_use", "use_sent_at", "used_at", "used_before", "seen",
                 "exists", "written", "server", "stale")  # fmt: skip

    def __init__(self, key: str) -> None:
        self.key = key
        self.fleet: dict[str, int] = {}  # counters and tags, as the last sync read them
        self.buckets: Buckets = {}
        self.anchor = 0  # the rates' grid (0: not known yet)
        self.anchor_sent = False  # the fleet has this worker's anchor, or one of its own
        self.pending: dict[str, int] = {}
        self.pending_buckets: Buckets = {}
        self.cleared: set[str] = set()
        self.tags_set: dict[str, int] = {}
        self.inflight: dict[str, int] = {}
        self.inflight_sets: dict[str, int] = {}
        self.inflight_buckets: Buckets = {}
        self.mine = 0  # requests of this worker tracking the entry now
        self.published = 0  # this worker's gauge share as last sent
        self.others_use = 0  # the other workers' fresh shares, as the last sync read them
        self.use_sent_at = 0
        self.used_at = 0
        self.used_before = 0
        self.seen = 0  # when the fleet last wrote it (Redis clock, ms)
        self.exists: bool | None = None
        self.written = False  # this worker wrote it since its last sync
        self.server: str | None = None
        self.stale: list[str] = []  # fields to delete at the next write (old periods, shares)

    @property
    def is_known(self) -> bool:
        """Whether the entry is in the table from this worker's view: the fleet had it at the
        last sync, or this worker wrote it since (writing creates it)."""
        return self.exists is True


@dataclass(slots=True)
class SyncRecord:
    """What one entry sends in one sync (rule 4). A write: increments (counters, and rate
    periods as ``name@start``), values (tags, and counters cleared since: the increments
    after the clear), the anchor to propose, this worker's gauge share (0: withdraw it) and
    stale fields to delete. A read sends nothing."""

    entry: Entry
    write: bool
    adds: dict[str, int] = field(default_factory=dict)
    sets: dict[str, int] = field(default_factory=dict)
    anchor: int = 0
    use: int | None = None
    deletes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EntryReply:
    """What Redis holds for one entry: its fields (none: not in the table), and for a read the
    server its persistence entry names, if any."""

    fields: dict[str, str]
    server: str | None = None


