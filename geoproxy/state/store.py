"""The fleet state interface: what the request path and the tools may ask of shared state.

Rules:
1. ``acquire`` is the only call on a request's critical path in steady state, and it costs at
   most one Redis round trip (DESIGN.md invariant 1), none for a busy worker's plain requests.
   ``release`` never waits on Redis: releases are batched and ride on the next acquire of the
   same backend, or on a short background flush. ``stick_store`` writes before the response
   goes on (the client's next request, on any worker or host, must find the entry), but only a
   response that teaches a table something new (a new session id) calls it.
2. ``view`` never does I/O: it returns the process's local snapshot, which a background loop
   refreshes from Redis twice a second.
3. When Redis is unreachable, every call still answers, from local counts and the last snapshot
   (DESIGN.md invariant 4); the implementation logs the outage once and converges when Redis is
   back. A lease taken while Redis was away is never released to Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from geoproxy.balance.policy import Ranking
from geoproxy.balance.view import BackendView, OperState, ServerView
from geoproxy.config.model import Backend


@dataclass(frozen=True, slots=True)
class Lease:
    """One request counted in flight on one server. ``shared`` is false when the count is only
    local (Redis was unreachable when it was taken); ``stuck`` is true when a stick-table entry
    chose the server; ``holder`` is the implementation's record of where the shared count
    was taken (for Redis: the worker's hash), so that it is given back there or not at all."""

    backend: str
    server: str
    shared: bool
    stuck: bool = False
    holder: str = ""


@dataclass(frozen=True, slots=True)
class StickEntry:
    """One stick-table entry: ``table`` is the table's name (the backend that declares it),
    ``key`` the sample value already converted to the table's type, ``ttl`` the table's
    ``expire`` in seconds (None: no expiry)."""

    table: str
    key: str
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class StickRequest:
    """The stick-table work of one request, done inside the acquire round trip: ``lookups`` in
    rule order (the first entry naming a server in ``allowed`` that has room decides; every
    entry found gets its full lifetime back, as HAProxy touches what it matches), then
    ``stores`` set to the server chosen."""

    lookups: tuple[StickEntry, ...]
    stores: tuple[StickEntry, ...]
    allowed: tuple[ServerView, ...]


class QueueUnavailable(Exception):
    """Queueing needs Redis and Redis cannot be reached: the request is answered 503."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """A request's place in a queue: ``server`` names the server queue of a persistent
    request (None: the backend's queue); ``wait_ms`` is ``timeout queue``; ``maxqueue`` bounds
    a server queue (0: no limit)."""

    id: str
    wait_ms: int
    server: str | None = None
    maxqueue: int = 0


@dataclass(frozen=True, slots=True)
class ServerReport:
    """One server as ``geoproxy state`` prints it."""

    name: str
    address: str
    admin: str
    oper: str
    weight: int  # effective (operator's weight, ramped by slowstart)
    cfg_weight: int
    inflight: int
    queued: int
    total: int
    backup: bool
    check: str  # last check: HAProxy status code and description
    check_ms: int | None
    streak: str  # consecutive check successes or failures
    errors: int  # connection and response errors
    since_change: float | None  # seconds since the last UP/DOWN transition
    # the statistics page's figures (fleet-wide, since the keys were created)
    maxconn: int = 0
    maxqueue: int = 0
    checked: bool = False  # has active health checks
    health: int = 0  # HAProxy's health counter: 0 .. rise+fall-1
    rise: int = 2
    fall: int = 3
    check_failures: int = 0
    downs: int = 0  # UP -> DOWN transitions
    downtime: float = 0.0  # seconds spent DOWN
    err_conn: int = 0
    err_resp: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    retries: int = 0
    redispatches: int = 0
    max_inflight: int = 0
    max_queued: int = 0
    rate: int = 0  # sessions over the last second
    rate_max: int = 0
    last_check: float | None = None  # seconds since the last health check


@dataclass(frozen=True, slots=True)
class FrontendReport:
    """A frontend's figures, summed over the backends it sent requests to."""

    name: str
    sessions: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rate: int = 0
    paused: bool = False  # disabled by an operator ('disable frontend'): no new connections


@dataclass(frozen=True, slots=True)
class BackendReport:
    name: str
    servers: tuple[ServerReport, ...]
    live_workers: int
    queued: int = 0  # requests waiting in the backend's queue
    max_inflight: int = 0
    max_queued: int = 0
    rate: int = 0
    rate_max: int = 0


@dataclass(frozen=True, slots=True)
class FleetReport:
    """The whole fleet as Redis holds it, at Redis time ``now_ms``: every backend, the
    frontends that sent traffic, and the live workers (``HOST:PID``)."""

    backends: tuple[BackendReport, ...]
    frontends: tuple[FrontendReport, ...]
    workers: tuple[str, ...]
    now_ms: int

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts with at least one live worker, sorted."""
        return tuple(sorted({worker.rpartition(":")[0] for worker in self.workers}))


class FleetState(Protocol):
    def register(self, backends: Sequence[Backend]) -> None:
        """Write the configured servers to shared state (once per host, at start-up), keeping
        the admin and health state that operators and checkers set earlier."""
        ...

    def attach(self, backends: Sequence[Backend], *, register: bool = False) -> None:
        """Build this process's local snapshot of ``backends`` (every worker, after fork);
        ``register``: also register them (as ``register`` does) as soon as the shared state
        can be reached, for a configuration that was loaded while it could not."""
        ...

    def view(self, backend: str) -> BackendView:
        """The local snapshot of one backend (no I/O)."""
        ...

    def acquire(
        self, backend: str, ranking: Ranking, stick: StickRequest | None = None
    ) -> Lease | None:
        """Take a server (a stick-table entry's, else one among ``ranking``) and count one
        request in flight on it, in one round trip.

        Returns None when no candidate has room.
        """
        ...

    def queue_acquire(self, backend: str, ranking: Ranking, ticket: Ticket) -> Lease | int | None:
        """Wait in line for a slot (one call per attempt): a ``Lease`` when served, else the
        ticket's rank; None when the queue is full."""
        ...

    def leave_queue(self, backend: str, ticket: Ticket) -> None:
        """Take a ticket out of its queue (the request gave up waiting)."""
        ...

    def count_error(self, backend: str, server: str, kind: str) -> None:
        """Count a connection (``conn``) or response (``resp``) error of a server; batched."""
        ...

    def count_traffic(self, lease: Lease, frontend: str, bytes_in: int, bytes_out: int) -> None:
        """Count one finished request of ``frontend`` served under ``lease`` and its bytes
        (request and response as forwarded); batched, never blocks."""
        ...

    def count_retry(self, backend: str, server: str, redispatch: bool) -> None:
        """Count a retry after a connection failure on ``server`` (a redispatch when the
        next attempt goes to another server); batched, never blocks."""
        ...

    def observe(self, backend: str, server: str, ok: bool) -> None:
        """Count one passive-health observation (``observe``); batched, never blocks."""
        ...

    def stick_store(self, entries: Sequence[StickEntry], server: str) -> None:
        """Remember ``server`` under ``entries`` (``stick store-response``, or stores that must
        follow a redispatch) in one round trip, before the response goes on; while Redis is
        unreachable the entries wait for the flusher. Never raises on a Redis failure."""
        ...

    def release(self, lease: Lease) -> None:
        """Give back what ``acquire`` took; batched, never blocks on Redis."""
        ...

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and decisions are local."""
        ...

    def on_transition(self, listener: Callable[[str, str, OperState, OperState], None]) -> None:
        """Call ``listener(backend, server, before, after)`` when a snapshot refresh sees a
        server's health state change."""
        ...

    def start(self) -> None:
        """Start the background loops (release flusher, heartbeat and snapshot refresh)."""
        ...

    def stop(self) -> None:
        """Stop the background loops and flush what is pending."""
        ...
