"""Fleet state on Redis: ``FleetState`` for one process, put together from its parts.

The parts, one job each (the concurrency essay is theirs, rule by rule):
- ``registry.py``: describing the configured backends in Redis;
- ``leases.py``: acquire, queue, release, on the request path (``group_commit.py`` batches one
  backend's calls, ``pool.py`` is the leastconn pool the script keeps an index of);
- ``flusher.py``: what leaves off the request path (releases no request carried, statistics,
  errors, observations);
- ``heartbeat.py``: liveness, reaping, and the snapshot reload;
- ``outage.py``: what the process does while Redis is away, and the holder id it counts under.

Rules:
1. One process = one ``RedisFleetState``. In a gunicorn worker, many greenlets call ``acquire``
   and ``release`` concurrently; both only touch plain dicts between two cooperative switches,
   and the group commit's one Redis call is the only switch point on the request path.
2. The fleet-wide truth is in Redis: ``inflight[s]`` equals the sum of the live workers'
   ``w:<id>[s]``, kept so by every script (DESIGN.md invariant 2).
3. Background loops (flusher, heartbeat) each have one owner, one loop and the stop event; a
   crash is logged with its traceback and the loop restarts after a pause.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence

from geoproxy.balance.policy import Ranking
from geoproxy.balance.view import BackendView
from geoproxy.config.model import Backend
from geoproxy.counters.registry import CounterTables
from geoproxy.state import registry
from geoproxy.state.backend_state import BackendState
from geoproxy.state.connect import REDIS_ERRORS, connect, is_cluster
from geoproxy.state.counters import CounterSync
from geoproxy.state.dns_store import DnsStore
from geoproxy.state.fastpath import fast_caller
from geoproxy.state.flusher import Flusher
from geoproxy.state.frontend_admin import FrontendAdmin
from geoproxy.state.group_commit import GroupCommit, Job
from geoproxy.state.health_store import HealthStore
from geoproxy.state.heartbeat import FULL_EVERY, HEARTBEAT_PERIOD, Heartbeat, TransitionListener
from geoproxy.state.keys import FRONTENDS_ADMIN
from geoproxy.state.leases import Leases
from geoproxy.state.outage import Outage
from geoproxy.state.report import read_fleet, read_report
from geoproxy.state.scripts import Scripts
from geoproxy.state.store import (
    BackendReport,
    FleetReport,
    Lease,
    StickEntry,
    StickRequest,
    Ticket,
)
from geoproxy.state.watcher import Watcher

REDIS_TIMEOUT = 0.5  # socket timeout for every Redis call, seconds

__all__ = ["REDIS_ERRORS", "RedisFleetState"]


class RedisFleetState:
    """``FleetState`` on one Redis: a single server, a Sentinel-managed master or a Cluster
    (``state/connect.py`` reads the URL)."""

    def __init__(
        self,
        url: str,
        worker_id: str,
        *,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id = worker_id
        self._log = log or logging.getLogger("geoproxy.state")
        self._client = connect(url, REDIS_TIMEOUT)
        self._scripts = Scripts()
        self._fast = fast_caller(url, REDIS_TIMEOUT)
        self._backends: dict[str, BackendState] = {}
        self._outage = Outage(worker_id, self._log, clock)
        self._leases = Leases(
            self._client,
            self._scripts,
            self._fast,
            self._outage,
            self._backends,
            clock=clock,
            wake_flusher=self._wake_flusher,
        )
        self._flusher = Flusher(
            self._client,
            self._scripts,
            self._fast,
            self._outage,
            self._backends,
            self._leases,
            clock=clock,
        )
        self._heartbeat = Heartbeat(
            self._client,
            self._scripts,
            self._backends,
            self._log,
            time_in_pipeline=not is_cluster(self._client),
        )
        self._clock = clock
        self.health = HealthStore(self._client, self._scripts)
        self.dns = DnsStore(self._client, self._scripts)  # run-time resolution (resolvers)
        self._stop = threading.Event()
        # set by the watcher when the routing state changed: the heartbeat reloads at once
        self._changed = threading.Event()
        self.watcher: Watcher | None = None
        self._threads: list[threading.Thread] = []
        self._counters: CounterSync | None = None  # stick counters (state/counters.py)

    # -- set-up -------------------------------------------------------------------------------

    def register(self, backends: Sequence[Backend]) -> None:
        registry.register(self._client, backends)
        self._attach(backends, beat=False)

    def attach(self, backends: Sequence[Backend], *, register: bool = False) -> None:
        """Build this worker's snapshot. ``register``: the caller's configuration may be newer
        than what Redis describes (it was reloaded while Redis was away, so nobody could
        register it): register it at the first refresh that reaches Redis."""
        self._heartbeat.unregistered = list(backends) if register else []
        self._attach(backends, beat=True)

    def _attach(self, backends: Sequence[Backend], *, beat: bool) -> None:
        """Build the local snapshot of ``backends``; ``beat``: count this process among the
        live workers (the registering master and tools are none)."""
        for backend in backends:
            self._backends[backend.name] = BackendState.of(backend, self._group_for(backend.name))
        try:
            self.refresh(beat=beat)
        except REDIS_ERRORS as error:
            self._outage.failed(error)

    def sync_counters(self, tables: CounterTables) -> None:
        """Keep this worker's stick counters in step with the fleet's, from ``start`` on."""
        self._counters = CounterSync(self._client, self._fast, tables, self.worker_id,
                                     self._outage)

    def _group_for(self, backend: str) -> GroupCommit:
        def send(batch: list[Job]) -> None:
            self._leases.send(self._backends[backend], batch)

        return GroupCommit(send)

    # -- the request path ---------------------------------------------------------------------

    def view(self, backend: str) -> BackendView:
        return self._backends[backend].view

    def acquire(
        self, backend: str, ranking: Ranking, stick: StickRequest | None = None
    ) -> Lease | None:
        return self._leases.acquire(backend, ranking, stick)

    def queue_acquire(self, backend: str, ranking: Ranking, ticket: Ticket) -> Lease | int | None:
        return self._leases.queue_acquire(backend, ranking, ticket)

    def leave_queue(self, backend: str, ticket: Ticket) -> None:
        self._leases.leave_queue(backend, ticket)

    def release(self, lease: Lease) -> None:
        self._leases.release(lease)

    def stick_store(self, entries: Sequence[StickEntry], server: str) -> None:
        if entries:
            later = self._flusher.sticks
            waiting = len(later)
            self._leases.stick_store(entries, server, later)
            if len(later) > waiting:
                self._flusher.wake()

    def count_error(self, backend: str, server: str, kind: str) -> None:
        errors = self._flusher.errors
        key = (backend, server, kind)
        errors[key] = errors.get(key, 0) + 1
        self._flusher.wake()

    def count_traffic(self, lease: Lease, frontend: str, bytes_in: int, bytes_out: int) -> None:
        self._backends[lease.backend].tally.saw_traffic(
            lease.server, frontend, bytes_in, bytes_out
        )

    def count_retry(self, backend: str, server: str, redispatch: bool) -> None:
        self._backends[backend].tally.saw_retry(server, redispatch)

    def observe(self, backend: str, server: str, ok: bool) -> None:
        run = self._flusher.observations.setdefault((backend, server), [0, 0, 0])
        if ok:
            run[0], run[1] = 0, 1  # a success ends the run of errors before it
        else:
            run[0] += 1
            run[2] += 1
        self._flusher.wake()

    def _wake_flusher(self, now: bool) -> None:
        self._flusher.wake(now)

    def on_transition(self, listener: TransitionListener) -> None:
        """Call ``listener`` whenever a refresh sees a server's health state change."""
        self._heartbeat.listeners.append(listener)

    def on_shutdown_request(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(backend, server)`` when a refresh sees that an operator asked to
        shut that server's sessions down (the Runtime API's ``shutdown sessions server``)."""
        self._heartbeat.shutdown_listeners.append(listener)

    def on_disabled_frontends(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Call ``listener(names)`` at every refresh with the frontends an operator disabled
        (the Runtime API's ``disable frontend``), read in the heartbeat's own pipeline."""
        self._heartbeat.frontend_listeners.append(listener)

    def disabled_frontends(self) -> frozenset[str]:
        """The frontends disabled now (one round trip; raises redis-py's errors)."""
        return FrontendAdmin(self._client).disabled()

    @property
    def degraded(self) -> bool:
        return self._outage.degraded

    # -- background -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the flusher and the heartbeat loops (in a gevent worker these are greenlets:
        gunicorn monkey-patches ``threading``)."""
        loops: list[tuple[Callable[[], None], str]] = [
            (lambda: self._flusher.loop(self._stop), "flusher"),
            (self._heartbeat_loop, "heartbeat"),
        ]
        counters = self._counters
        if counters is not None:
            loops.append((lambda: counters.loop(self._stop), "counters"))
        prefixes = [state.keys.server_prefix for state in self._backends.values()]
        if prefixes:
            watcher = Watcher(self._client, [*prefixes, FRONTENDS_ADMIN], self._changed.set,
                              self._log)
            self.watcher = watcher
            loops.append((lambda: watcher.loop(self._stop), "watcher"))
        for target, name in loops:
            thread = threading.Thread(
                target=self._guarded(target, name), name=f"geoproxy-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()
        self._flusher.wanted.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        try:
            self.flush()
        except REDIS_ERRORS:
            pass
        if self._counters is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                self._counters.sync()

    def _guarded(self, loop: Callable[[], None], name: str) -> Callable[[], None]:
        """Run ``loop`` until stopped (rule 3)."""

        def run() -> None:
            while not self._stop.is_set():
                try:
                    loop()
                except Exception:
                    self._log.exception("fleet state loop %s crashed; restarting", name)
                    self._stop.wait(1.0)

        return run

    def _heartbeat_loop(self) -> None:
        # A heartbeat every HEARTBEAT_PERIOD; in between, a reload of the snapshot alone as
        # soon as the watcher says the routing state changed (messages arriving meanwhile
        # make one more). The heartbeat's cadence is the period's, whatever the reloads.
        # The server hashes are read on a message, and at the heartbeat only every FULL_EVERY-th
        # time while the watcher tracks every write (else at each: the safety net).
        beat_at = self._clock() + HEARTBEAT_PERIOD
        unread = 0  # heartbeats since the server hashes were last read
        while True:
            changed = self._changed.wait(max(beat_at - self._clock(), 0.0))
            self._changed.clear()
            if self._stop.is_set():
                return
            beat = not changed or self._clock() >= beat_at
            watched = self.watcher is not None and self.watcher.watching.is_set()
            servers = changed or not watched or unread + 1 >= FULL_EVERY
            try:
                self.refresh(beat=beat, servers=servers)
            except REDIS_ERRORS as error:
                self._outage.failed(error)
                servers = False  # nothing was read: the count since the last reading goes on
            else:
                self._outage.answered()
            unread = 0 if servers else unread + 1
            if not beat:
                continue
            beat_at = self._clock() + HEARTBEAT_PERIOD
            if any(not state.tally.is_empty() for state in self._backends.values()):
                self._flusher.wake()  # statistics left over once traffic stopped

    def flush(self) -> None:
        """Send now whatever waits: releases, statistics, errors, observations, stick entries."""
        self._flusher.flush()

    def refresh(self, *, beat: bool = True, servers: bool = True) -> None:
        """One heartbeat: say this process is alive, reap dead workers, and reload the snapshot
        of every backend (admin and health state, weights, fleet-wide counts), in one pipeline
        (``servers``: the server hashes too, else their last reading, heartbeat.py rule 5)."""
        started = self._clock()
        redis_ms = self._heartbeat.refresh(self._outage.holder, beat=beat, servers=servers)
        self._leases.redis_offset_ms = redis_ms - started * 1000
        for state in self._backends.values():
            state.counts_at = started
        if beat and self._backends:
            self._leases.beaten_at = started

    def reap(self, worker_ids: Sequence[str]) -> int:
        """Give back at once what ``worker_ids`` (known dead) held, in every backend; returns
        how many were reaped. Called by the gunicorn master when a worker exits."""
        return self._heartbeat.reap(worker_ids)

    # -- reading for tools --------------------------------------------------------------------

    def report(self) -> list[BackendReport]:
        """Every registered backend as ``geoproxy state`` prints it, read from Redis alone."""
        return read_report(self._client)

    def fleet_report(self) -> FleetReport:
        """The whole fleet for the stats page and ``geoproxy top``, read from Redis alone."""
        return read_fleet(self._client)

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._client.close()
