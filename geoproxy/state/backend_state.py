"""What one process knows about one backend: its snapshot, its counts, what waits to be sent.

Mutable, owned by one ``RedisFleetState``; the request path, the flusher and the heartbeat of
that process read and change it between two cooperative switches only (see redis_store.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    fleet_inflight: dict[str, int] = field(default_factory=dict)
    fleet_total: int = 0  # sum of ``fleet_inflight``
    counts_at: float = float("-inf")  # when every count was last read (clock seconds)
    local_inflight: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)  # releases not yet sent
    tally: BackendTally = field(default_factory=BackendTally)
    contended_until: float = 0.0  # requests of this process queued recently (clock seconds)
    carried: int = 0  # how many calls carried this backend's pending releases

    @classmethod
    def of(cls, backend: Backend, group: GroupCommit) -> BackendState:
        return cls(
            config=backend,
            keys=backend_keys(backend.name),
            view=initial_view(backend),
            group=group,
            has_queues=any(server.maxconn for server in backend.servers),
        )

    def take_pending(self) -> dict[str, int]:
        taken, self.pending = self.pending, {}
        return taken

    def give_back_pending(self, taken: dict[str, int]) -> None:
        for name, count in taken.items():
            self.pending[name] = self.pending.get(name, 0) + count

    def take_tally(self) -> BackendTally:
        taken, self.tally = self.tally, BackendTally()
        return taken

    def saw_count(self, name: str, count: int) -> None:
        """Redis answered ``count`` in flight on ``name``."""
        counts = self.fleet_inflight
        self.fleet_total += count - counts.get(name, 0)
        counts[name] = count

    def saw_counts(self, counts: dict[str, int], *, whole: bool = True) -> None:
        """A call read ``counts``: every count of the backend (``whole``), or some."""
        if whole:
            self.fleet_inflight = counts
        else:
            self.fleet_inflight.update(counts)
        self.fleet_total = sum(self.fleet_inflight.values())

