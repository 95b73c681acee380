"""What one process knows about one backend: its snapshot, its counts, what waits to be sent.

Mutable, owned by one ``RedisFleetState``; the request path, the flusher and the heartbeat of
that process read and change it between two cooperative switches only (see redis_store.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geoproxy.balance.view import BackendView, ServerView
from geoproxy.config.model import Backend
from geoproxy.state.group_commit import GroupCommit
from geoproxy.state.keys import BackendKeys, backend_keys
from geoproxy.state.pool import Pool, build_pool
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
    pool: Pool | None = None  # the leastconn pool last sent, or about to be
    fleet_inflight: dict[str, int] = field(default_factory=dict)
    fleet_total: int = 0  # sum of ``fleet_inflight``
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

    def pool_for(self, members: tuple[ServerView, ...]) -> Pool:
        """The pool of ``members`` (a policy's eligible tuple), built once per tuple: a new
        tuple with the same content keeps what Redis is known to hold."""
        pool = self.pool
        if pool is None or pool.members is not members:
            previous = pool
            pool = self.pool = build_pool(members, self.view_version)
            if previous is not None and previous.digest == pool.digest:
                pool.held = previous.held
        return pool

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

    def saw_counts(self, counts: dict[str, int]) -> None:
        """A refresh read every count."""
        self.fleet_inflight = counts
        self.fleet_total = sum(counts.values())

