"""What one process knows about one backend: its snapshot, its counts, what waits to be sent.

Mutable, owned by one ``RedisFleetState``; the request path, the flusher and the heartbeat of
that process read and change it between two cooperative switches only (see redis_store.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geoproxy.balance.view import BackendView
from geoproxy.config.model import Backend
from geoproxy.state.group_commit import GroupCommit
from geoproxy.state.keys import BackendKeys, backend_keys
from geoproxy.state.snapshot import initial_view
from geoproxy.state.tally import BackendTally


@dataclass(slots=True)
class BackendState:
    """``group`` batches this backend's acquire calls (set by the owner, which sends them)."""

    config: Backend
    keys: BackendKeys
    view: BackendView
    group: GroupCommit
    has_queues: bool  # a server has maxconn: acquire must respect the queues
    view_version: int = 0  # Redis time (ms) of the refresh that built ``view``
    # the fleet's counts as this process last read them, plus its own changes not yet sent
    fleet_inflight: dict[str, int] = field(default_factory=dict)
    fleet_total: int = 0  # sum of ``fleet_inflight``
    counts_at: float = float("-inf")  # when every count was last read (clock seconds)
    local_inflight: dict[str, int] = field(default_factory=dict)
    # changes to this process's counts not yet sent, by server: +1 per request counted here
    # without a call (leases.py rule 2), -1 per release; a server whose changes cancel out
    # has no entry
    pending: dict[str, int] = field(default_factory=dict)
    counts_wanted: bool = False  # a call should read every count, even with nothing to carry
    pending_since: float = 0.0  # since when ``pending`` or ``counts_wanted`` waits (clock s)
    plain_gap: float = 1.0  # the average time between two plain requests, seconds
    plain_at: float = float("-inf")  # when the last plain request came (clock seconds)
    # the server hashes' STATE_FIELDS as last read, in configuration order (heartbeat.py rule 5)
    server_fields: list[Any] | None = None
    tally: BackendTally = field(default_factory=BackendTally)
    contended_until: float = 0.0  # requests of this process queued recently (clock seconds)

    @classmethod
    def of(cls, backend: Backend, group: GroupCommit) -> BackendState:
        return cls(
            config=backend,
            keys=backend_keys(backend.name),
            view=initial_view(backend),
            group=group,
            has_queues=any(server.maxconn for server in backend.servers),
        )

    def change_pending(self, name: str, by: int, now: float) -> None:
        """This process counts ``by`` more in flight on ``name`` (a request it decided, or a
        release), to be sent with the backend's next call; its view of the fleet counts it at
        once."""
        self._starts_waiting(now)
        pending = self.pending
        left = pending.get(name, 0) + by
        if left:
            pending[name] = left
        else:
            del pending[name]
        counts = self.fleet_inflight
        counts[name] = counts.get(name, 0) + by
        self.fleet_total += by

    def note_plain(self, now: float) -> float:
        """A plain request comes (leases.py rule 2): the average time between two, seconds,
        over about the last eight."""
        gap = min(now - self.plain_at, 1.0)
        self.plain_at = now
        self.plain_gap += (gap - self.plain_gap) * 0.125
        return self.plain_gap

    def want_counts(self, now: float) -> None:
        """The next call should read every count: the last reading grows old."""
        self._starts_waiting(now)
        self.counts_wanted = True

    def _starts_waiting(self, now: float) -> None:
        """Something is about to wait for a call: when nothing did, the wait begins ``now``."""
        if not self.pending and not self.counts_wanted:
            self.pending_since = now

    def take_pending(self) -> dict[str, int]:
        taken, self.pending = self.pending, {}
        return taken

    def give_back_pending(self, taken: dict[str, int]) -> None:
        for name, count in taken.items():
            left = self.pending.get(name, 0) + count
            if left:
                self.pending[name] = left
            else:
                self.pending.pop(name, None)

    def take_tally(self) -> BackendTally:
        taken, self.tally = self.tally, BackendTally()
        return taken

    def saw_count(self, name: str, count: int) -> None:
        """Redis answered ``count`` in flight on ``name`` (what this process changed since the
        call left counts on top)."""
        count += self.pending.get(name, 0)
        counts = self.fleet_inflight
        self.fleet_total += count - counts.get(name, 0)
        counts[name] = count

    def saw_counts(self, counts: dict[str, int]) -> None:
        """A call read every count of the backend (what this process changed since the call
        left counts on top)."""
        for name, by in self.pending.items():
            counts[name] = counts.get(name, 0) + by
        self.fleet_inflight = counts
        self.fleet_total = sum(counts.values())

