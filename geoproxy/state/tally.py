"""Statistics counters a process accumulates between two flushes (no I/O here).

Rules:
1. Nothing here costs a Redis round trip: the request path adds to plain ints, and the flusher
   sends a backend's whole tally in one ``stats.lua`` call, at most once a second
   (``state/flusher.py``).
2. Maxima are learnt from what the acquire and queue scripts already answer: acquire returns
   the chosen server's in-flight count right after its increment, and a ticket's first rank is
   the queue's length when it joined, minus one. Counts only rise on those events, so the
   largest value any process saw is the fleet's maximum. The backend's in-flight sum is the
   process's running estimate (the last refresh, moved by what acquire answers).
3. A tally taken for a flush that failed is merged back, so nothing is lost or counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ServerTally:
    sessions: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    retries: int = 0
    redispatches: int = 0
    max_inflight: int = 0
    max_queued: int = 0

    def merge(self, other: ServerTally) -> None:
        self.sessions += other.sessions
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.retries += other.retries
        self.redispatches += other.redispatches
        self.max_inflight = max(self.max_inflight, other.max_inflight)
        self.max_queued = max(self.max_queued, other.max_queued)


@dataclass(slots=True)
class FrontendTally:
    """What went through one frontend to this backend (frontends have no keys of their own:
    their figures are summed over the backends at read time)."""

    sessions: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def merge(self, other: FrontendTally) -> None:
        self.sessions += other.sessions
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out


@dataclass(slots=True)
class BackendTally:
    servers: dict[str, ServerTally] = field(default_factory=dict)
    frontends: dict[str, FrontendTally] = field(default_factory=dict)
    sessions: int = 0
    max_inflight: int = 0
    max_queued: int = 0

    def server(self, name: str) -> ServerTally:
        tally = self.servers.get(name)
        if tally is None:
            tally = self.servers[name] = ServerTally()
        return tally

    def saw_acquire(self, name: str, count: int, total: int) -> None:
        """One request taken by ``name``, which has ``count`` in flight now, out of ``total``
        in the backend."""
        server = self.server(name)
        server.sessions += 1
        self.sessions += 1
        if count > server.max_inflight:
            server.max_inflight = count
        if total > self.max_inflight:
            self.max_inflight = total

    def saw_queue(self, server: str | None, length: int) -> None:
        """A ticket joined a queue of ``length`` (itself included): a server's, or the
        backend's when ``server`` is None."""
        if server is None:
            self.max_queued = max(self.max_queued, length)
        else:
            tally = self.server(server)
            tally.max_queued = max(tally.max_queued, length)

    def saw_traffic(self, server: str, frontend: str, bytes_in: int, bytes_out: int) -> None:
        tally = self.server(server)
        tally.bytes_in += bytes_in
        tally.bytes_out += bytes_out
        front = self.frontends.get(frontend)
        if front is None:
            front = self.frontends[frontend] = FrontendTally()
        front.sessions += 1
        front.bytes_in += bytes_in
        front.bytes_out += bytes_out

    def saw_retry(self, server: str, redispatch: bool) -> None:
        tally = self.server(server)
        if redispatch:
            tally.redispatches += 1
        else:
            tally.retries += 1

    def is_empty(self) -> bool:
        return not (self.servers or self.frontends or self.sessions or self.max_queued)

    def merge(self, other: BackendTally) -> None:
        for name, tally in other.servers.items():
            self.server(name).merge(tally)
        for name, front in other.frontends.items():
            self.frontends.setdefault(name, FrontendTally()).merge(front)
        self.sessions += other.sessions
        self.max_inflight = max(self.max_inflight, other.max_inflight)
        self.max_queued = max(self.max_queued, other.max_queued)

    def script_args(self) -> tuple[list[str], list[Any]]:
        """The server names (whose hashes are the script's extra KEYS) and the arguments of
        ``stats.lua``, in its documented order."""
        names = list(self.servers)
        args: list[Any] = [self.sessions, self.max_inflight, self.max_queued, len(names)]
        for name in names:
            tally = self.servers[name]
            args += (name, tally.sessions, tally.bytes_in, tally.bytes_out, tally.retries,
                     tally.redispatches, tally.max_inflight, tally.max_queued)
        args.append(len(self.frontends))
        for name, front in self.frontends.items():
            args += (name, front.sessions, front.bytes_in, front.bytes_out)
        return names, args
