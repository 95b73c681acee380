"""Fleet state on Redis: the only module of geoproxy that talks to Redis.

Rules (the concurrency essay, as HAProxy's queue.c opens with one):
1. One process = one ``RedisFleetState``. In a gunicorn worker, many greenlets call ``acquire``
   and ``release`` concurrently; both only touch plain dicts between two cooperative switches,
   and the single Redis call of ``acquire`` is the only switch point on the request path.
2. Releases are counted into ``_BackendState.pending`` and leave it in exactly one of two ways:
   swapped out by an ``acquire`` of the same backend, which applies them first in its script,
   or swapped out by the flusher. When the Redis call fails they are merged back, so a count is
   never lost and never given back twice. The flusher only sends releases that no acquire
   carried for ``FLUSH_DELAY`` (at most twice that after the release): under load, acquires
   carry them all and the flusher only sends the statistics, once a heartbeat period. A
   release that leaves the process with nothing in flight in its backend goes at once.
3. The fleet-wide truth is in Redis: ``inflight[s]`` equals the sum of the live workers'
   ``w:<id>[s]``, kept so by every script. A worker's hash is what the reaper gives back when
   the worker dies (DESIGN.md invariant 2): the gunicorn master reaps its own dead workers at
   once, and every live process reaps expired workers of any host on each heartbeat.
4. While Redis is unreachable, decisions are local (this process's own counts) and leases are
   marked unshared; the outage and the recovery are each logged once (invariant 4).
5. A call that counts a request in flight (acquire, queue) and fails may still have run: a
   stalled Redis runs it once it wakes, after the process gave up on it. So after such a
   failure the process counts under a new name, its *holder* id (``worker_id#N``), and never
   writes under the old one again: the old hash, phantom counts included, is reaped with the
   old id's expiry, and a lease taken under an old holder is given back by that reaper, never
   released (``Lease.holder``). The fleet's counts converge to the truth without knowing
   which calls ran.
6. This worker's entry in the live-workers set is refreshed at least every ``HEARTBEAT_PERIOD``
   while it runs: by the heartbeat, or by an acquire when the last refresh is that old (an
   acquire in between asks the script not to refresh it: two Redis commands fewer).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from geoproxy.balance.policy import Ranking
from geoproxy.balance.rank import decide
from geoproxy.balance.view import BackendView, OperState
from geoproxy.config.model import Backend
from geoproxy.state.connect import REDIS_ERRORS, connect, is_cluster
from geoproxy.state.dns_store import DnsStore
from geoproxy.state.fastpath import fast_caller
from geoproxy.state.health_store import HealthStore
from geoproxy.state.keys import BACKENDS, BackendKeys, backend_keys, stick_key
from geoproxy.state.report import read_fleet, read_report
from geoproxy.state.scripts import Batch, Scripts
from geoproxy.state.snapshot import STATE_FIELDS, initial_view, rebuild_view, transitions
from geoproxy.state.store import (
    BackendReport,
    FleetReport,
    Lease,
    QueueUnavailable,
    StickEntry,
    StickRequest,
    Ticket,
)
from geoproxy.state.tally import BackendTally

HEARTBEAT_PERIOD = 0.5  # seconds between two heartbeats (and snapshot refreshes) of a process
WORKER_TTL_MS = 1500  # a worker whose last heartbeat is older than this is dead
# How long a release may wait for an acquire to carry it, seconds. Short, because leastconn in
# other workers reads the fleet-wide count: under load acquires carry every release anyway.
FLUSH_DELAY = 0.002
REDIS_TIMEOUT = 0.5  # socket timeout for every Redis call, seconds
RETRY_AFTER = 1.0  # after a failure, the request path leaves Redis alone this long, seconds

# (backend, server, health before, health after), called from the snapshot refresh
TransitionListener = Callable[[str, str, OperState, OperState], None]

__all__ = ["REDIS_ERRORS", "RedisFleetState"]

_health_log = logging.getLogger("geoproxy.health")


def _ttl_ms(ttl: float | None) -> int:
    """A stick entry's lifetime for Redis: milliseconds, 0 for none."""
    return max(int(ttl * 1000), 1) if ttl else 0


@dataclass(slots=True)
class _BackendState:
    """What one process knows about one backend. Mutable, owned by the ``RedisFleetState``."""

    config: Backend
    keys: BackendKeys
    acquire_keys: list[str]
    view: BackendView
    # server -> its queue's key, for backends with maxconn (acquire then respects the queues)
    queue_keys: dict[str, str] = field(default_factory=dict)
    fleet_inflight: dict[str, int] = field(default_factory=dict)
    local_inflight: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    tally: BackendTally = field(default_factory=BackendTally)
    contended_until: float = 0.0  # requests of this process queued recently (clock seconds)
    carried: int = 0  # how many acquires carried this backend's pending releases

    def take_pending(self) -> dict[str, int]:
        taken, self.pending = self.pending, {}
        return taken

    def give_back_pending(self, taken: dict[str, int]) -> None:
        for name, count in taken.items():
            self.pending[name] = self.pending.get(name, 0) + count

    def take_tally(self) -> BackendTally:
        taken, self.tally = self.tally, BackendTally()
        return taken


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
        self._generation = 0
        self._holder = worker_id  # the id this process counts under now (rule 5)
        self._log = log or logging.getLogger("geoproxy.state")
        self._clock = clock
        self._client = connect(url, REDIS_TIMEOUT)
        # A Cluster pipeline cannot carry TIME (no key to route it by): ask it apart.
        self._time_in_pipeline = not is_cluster(self._client)
        self._scripts = Scripts()
        self._fast = fast_caller(url, REDIS_TIMEOUT)
        self._backends: dict[str, _BackendState] = {}
        self._pending_sticks: list[tuple[StickEntry, str]] = []
        self._transition_listeners: list[TransitionListener] = []
        self._flush_now = False
        self._pending_errors: dict[tuple[str, str, str], int] = {}
        self._unregistered: list[Backend] = []  # to register once Redis answers (``attach``)
        # (backend, server) -> [errors since the last success, saw a success, all errors]
        self._pending_observations: dict[tuple[str, str], list[int]] = {}
        self.health = HealthStore(self._client, self._scripts)
        self.dns = DnsStore(self._client, self._scripts)  # run-time resolution (resolvers)
        self._down_until = 0.0
        self._beaten_at = float("-inf")  # when this worker's liveness was last refreshed
        self._tallied_at = 0.0  # when the statistics were last flushed
        self._degraded = False
        self._stop = threading.Event()
        self._flush_wanted = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- set-up -------------------------------------------------------------------------------

    def register(self, backends: Sequence[Backend]) -> None:
        self._register(backends)
        self._attach(backends, beat=False)

    def _register(self, backends: Sequence[Backend]) -> None:
        for backend in backends:
            pipe = self._client.pipeline(transaction=False)
            self._write_backend(pipe, backend, initial_view(backend))
            pipe.execute()
            self._forget_removed_servers(backend_keys(backend.name), backend)

    @staticmethod
    def _write_backend(pipe: Any, backend: Backend, view: BackendView) -> None:
        """Queue the writes that describe ``backend`` in Redis. Admin state, health and
        weight are only set where absent (operators' and checkers' values survive restarts and
        reloads); ``view`` gives them: the configuration's at start-up, the last snapshot when
        Redis came back empty."""
        keys = backend_keys(backend.name)
        pipe.sadd(BACKENDS, backend.name)
        for index, (server, seen) in enumerate(zip(backend.servers, view.servers, strict=True)):
            pipe.zadd(keys.servers, {server.name: index})
            key = keys.server(server.name)
            pipe.hset(
                key,
                mapping={
                    "addr": f"{server.host}:{server.port}",
                    "cfg_weight": server.weight,
                    "maxconn": server.maxconn,
                    "maxqueue": server.maxqueue,
                    "backup": int(server.backup),
                    "cookie": server.cookie or "",
                    "slowstart": server.slowstart,
                    "check": int(server.check),
                    "rise": server.rise,
                    "fall": server.fall,
                },
            )
            pipe.hsetnx(key, "admin", seen.admin.value)
            pipe.hsetnx(key, "oper", seen.oper.value)
            pipe.hsetnx(key, "weight", seen.weight)

    def _forget_removed_servers(self, keys: BackendKeys, backend: Backend) -> None:
        configured = {server.name for server in backend.servers}
        known = cast(list[str], self._client.zrange(keys.servers, 0, -1))
        removed = [name for name in known if name not in configured]
        if not removed:
            return
        pipe = self._client.pipeline(transaction=False)
        pipe.zrem(keys.servers, *removed)
        pipe.hdel(keys.total, *removed)
        for name in removed:
            pipe.delete(keys.server(name))
        pipe.execute()

    def attach(self, backends: Sequence[Backend], *, register: bool = False) -> None:
        """Build this worker's snapshot. ``register``: the caller's configuration may be newer
        than what Redis describes (it was reloaded while Redis was away, so nobody could
        register it): register it at the first refresh that reaches Redis."""
        self._unregistered = list(backends) if register else []
        self._attach(backends, beat=True)

    def _attach(self, backends: Sequence[Backend], *, beat: bool) -> None:
        """Build the local snapshot of ``backends``; ``beat``: count this process among the
        live workers (the registering master and tools are none)."""
        for backend in backends:
            keys = backend_keys(backend.name)
            queues = any(server.maxconn for server in backend.servers)
            self._backends[backend.name] = _BackendState(
                config=backend,
                keys=keys,
                acquire_keys=self._acquire_keys(keys),
                view=initial_view(backend),
                queue_keys={s.name: keys.server_queue(s.name) for s in backend.servers}
                if queues
                else {},
            )
        try:
            self.refresh(beat=beat)
        except REDIS_ERRORS as error:
            self._mark_down(error)

    def _acquire_keys(self, keys: BackendKeys) -> list[str]:
        return [keys.inflight, keys.total, keys.worker(self._holder), keys.workers]

    def _new_holder(self) -> None:
        """Count under a fresh holder id from now on (rule 5); releases not yet sent belong to
        the old one, whose reaping gives them back."""
        self._generation += 1
        self._holder = f"{self.worker_id}#{self._generation}"
        for state in self._backends.values():
            state.acquire_keys = self._acquire_keys(state.keys)
            state.pending = {}

    # -- the request path ---------------------------------------------------------------------

    def view(self, backend: str) -> BackendView:
        return self._backends[backend].view

    def acquire(
        self, backend: str, ranking: Ranking, stick: StickRequest | None = None
    ) -> Lease | None:
        state = self._backends[backend]
        now = self._clock()
        if now >= self._down_until:
            taken = state.take_pending()
            state.carried += 1
            keys = state.acquire_keys
            beat = now - self._beaten_at >= HEARTBEAT_PERIOD
            args = self._acquire_args(ranking, taken, beat)
            if stick is not None:
                keys, args = self._with_stick(keys, args, stick)
            if state.queue_keys:
                keys = keys + [state.keys.queue]
                keys += [state.queue_keys[c.name] for c in ranking.candidates]
            try:
                reply = self._scripts.call(self._client, "acquire", keys, args, self._fast)
            except REDIS_ERRORS as error:
                state.give_back_pending(taken)
                self._new_holder()
                self._mark_down(error)
            else:
                self._mark_up()
                if beat:
                    self._beaten_at = now
                return self._lease_from_reply(state, reply, holder=keys[2])
        return self._acquire_locally(state, ranking)

    def _ranking_args(self, ranking: Ranking, beat: bool = True) -> list[Any]:
        """The arguments acquire.lua and queue.lua start with: who asks (and whether its
        liveness needs refreshing, rule 6), and the ranking."""
        args: list[Any] = [
            self._holder,
            WORKER_TTL_MS if beat else 0,
            ranking.mode.value,
            len(ranking.candidates),
        ]
        for candidate in ranking.candidates:
            args += (candidate.name, candidate.weight, candidate.maxconn)
        return args

    def _acquire_args(
        self, ranking: Ranking, releases: dict[str, int], beat: bool
    ) -> list[Any]:
        args = self._ranking_args(ranking, beat)
        args.append(len(releases))
        for name, count in releases.items():
            args += (name, count)
        return args

    @staticmethod
    def _with_stick(
        keys: list[str], args: list[Any], stick: StickRequest
    ) -> tuple[list[str], list[Any]]:
        keys = keys + [stick_key(e.table, e.key) for e in stick.lookups]
        keys += [stick_key(e.table, e.key) for e in stick.stores]
        args = args + [len(stick.lookups), len(stick.stores), len(stick.allowed)]
        for server in stick.allowed:
            args += (server.name, server.maxconn)
        args += [_ttl_ms(entry.ttl) for entry in stick.lookups]
        args += [_ttl_ms(entry.ttl) for entry in stick.stores]
        return keys, args

    def _lease_from_reply(
        self, state: _BackendState, reply: list[Any], holder: str
    ) -> Lease | None:
        """The lease a reply of acquire.lua gives, counted under ``holder`` (the worker hash the
        call was sent with: the process may have a new holder by the time the reply comes)."""
        name = reply[0]
        if not name:
            return None
        counts = state.fleet_inflight
        counts[name] = int(reply[2])
        state.local_inflight[name] = state.local_inflight.get(name, 0) + 1
        state.tally.saw_acquire(name, counts)
        return Lease(state.config.name, name, True, bool(reply[1]), holder)

    def queue_acquire(self, backend: str, ranking: Ranking, ticket: Ticket) -> Lease | int | None:
        """Wait in line for a slot: a ``Lease`` when served, else the ticket's rank in its
        queue; None when the queue is full (``maxqueue``). Raises on Redis errors (a queued
        request cannot be served from local counts)."""
        state = self._backends[backend]
        keys = state.keys
        queue = keys.server_queue(ticket.server) if ticket.server else keys.queue
        args = self._ranking_args(ranking) + [ticket.id, ticket.wait_ms, ticket.maxqueue]
        holder = state.acquire_keys[2]
        try:
            reply = self._scripts.call(
                self._client,
                "queue",
                [*state.acquire_keys, queue, keys.queue_deadlines, keys.queue_sequence],
                args,
                self._fast,
            )
        except REDIS_ERRORS as error:
            self._new_holder()
            self._mark_down(error)
            raise QueueUnavailable(str(error)) from error
        name, rank = reply
        if name:
            state.local_inflight[name] = state.local_inflight.get(name, 0) + 1
            state.contended_until = self._clock() + 1.0
            state.tally.saw_acquire(name, state.fleet_inflight)
            return Lease(backend, name, True, holder=holder)
        if int(rank) < 0:
            return None
        state.contended_until = self._clock() + 1.0
        state.tally.saw_queue(ticket.server, int(rank) + 1)
        return int(rank)

    def leave_queue(self, backend: str, ticket: Ticket) -> None:
        """Take a ticket out of its queue (the request gave up waiting)."""
        keys = self._backends[backend].keys
        queue = keys.server_queue(ticket.server) if ticket.server else keys.queue
        pipe = self._client.pipeline(transaction=False)
        pipe.zrem(queue, ticket.id)
        pipe.hdel(keys.queue_deadlines, ticket.id)
        try:
            pipe.execute()
        except REDIS_ERRORS as error:
            raise QueueUnavailable(str(error)) from error

    def count_error(self, backend: str, server: str, kind: str) -> None:
        key = (backend, server, kind)
        self._pending_errors[key] = self._pending_errors.get(key, 0) + 1
        self._flush_wanted.set()

    def count_traffic(self, lease: Lease, frontend: str, bytes_in: int, bytes_out: int) -> None:
        self._backends[lease.backend].tally.saw_traffic(
            lease.server, frontend, bytes_in, bytes_out
        )

    def count_retry(self, backend: str, server: str, redispatch: bool) -> None:
        self._backends[backend].tally.saw_retry(server, redispatch)

    def observe(self, backend: str, server: str, ok: bool) -> None:
        run = self._pending_observations.setdefault((backend, server), [0, 0, 0])
        if ok:
            run[0], run[1] = 0, 1  # a success ends the run of errors before it
        else:
            run[0] += 1
            run[2] += 1
        self._flush_wanted.set()

    def stick_store(self, entries: Sequence[StickEntry], server: str) -> None:
        if not entries:
            return
        # Written now, not by the flusher: a browser's next request comes within a millisecond,
        # perhaps to another worker, and must find the session it was just given.
        if self._clock() >= self._down_until:
            pipe = self._client.pipeline(transaction=False)
            for entry in entries:
                pipe.set(stick_key(entry.table, entry.key), server, px=_ttl_ms(entry.ttl) or None)
            try:
                pipe.execute()
            except REDIS_ERRORS as error:
                self._mark_down(error)
            else:
                self._mark_up()
                return
        self._pending_sticks.extend((entry, server) for entry in entries)
        self._flush_wanted.set()

    def _acquire_locally(self, state: _BackendState, ranking: Ranking) -> Lease | None:
        local = state.local_inflight
        candidates = tuple(
            dataclasses.replace(view, inflight=local.get(view.name, 0))
            for view in ranking.candidates
        )
        chosen = decide(Ranking(ranking.mode, candidates))
        if chosen is None:
            return None
        local[chosen.name] = local.get(chosen.name, 0) + 1
        return Lease(state.config.name, chosen.name, shared=False)

    def release(self, lease: Lease) -> None:
        state = self._backends[lease.backend]
        local = state.local_inflight
        local[lease.server] = max(local.get(lease.server, 0) - 1, 0)
        if not lease.shared or lease.holder != state.acquire_keys[2]:
            return  # counted locally only, or by an old holder that the reaper gives back
        pending = state.pending
        pending[lease.server] = pending.get(lease.server, 0) + 1
        if (state.contended_until and self._clock() < state.contended_until) or not any(
            local.values()
        ):
            # Someone waits in a queue, or this process has nothing else in flight in this
            # backend (no acquire will come soon to carry it): give the slot back at once, so
            # that other workers' leastconn sees the true count.
            self._flush_now = True
            self._flush_wanted.set()
        elif not self._flush_wanted.is_set():
            self._flush_wanted.set()

    def on_transition(self, listener: TransitionListener) -> None:
        """Call ``listener`` whenever a refresh sees a server's health state change."""
        self._transition_listeners.append(listener)

    @property
    def degraded(self) -> bool:
        return self._degraded

    def _mark_down(self, error: Exception) -> None:
        self._down_until = self._clock() + RETRY_AFTER
        if not self._degraded:
            self._degraded = True
            self._log.error(
                "Redis unreachable (%s): routing from the local snapshot and local counts", error
            )

    def _mark_up(self) -> None:
        self._down_until = 0.0  # Redis answered: the request path need not wait out RETRY_AFTER
        if self._degraded:
            self._degraded = False
            self._log.warning("Redis reachable again: routing with fleet-wide state")

    # -- background: flusher and heartbeat ------------------------------------------------------

    def start(self) -> None:
        """Start the flusher and the heartbeat loops (in a gevent worker these are greenlets:
        gunicorn monkey-patches ``threading``)."""
        for target, name in ((self._flush_loop, "flusher"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(
                target=self._guarded(target), name=f"geoproxy-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._flush_wanted.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        try:
            self.flush()
        except REDIS_ERRORS:
            pass

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        """Run ``loop`` until stopped; a crash is logged with its traceback and the loop restarts
        (after a pause, so a persistent fault cannot spin)."""

        def run() -> None:
            while not self._stop.is_set():
                try:
                    loop()
                except Exception:
                    self._log.exception("fleet state loop %s crashed; restarting", loop.__name__)
                    self._stop.wait(1.0)

        return run

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._flush_wanted.wait()
            self._flush_wanted.clear()
            try:
                self._flush_stale()
            except REDIS_ERRORS as error:
                self._mark_down(error)
                self._stop.wait(RETRY_AFTER)
                self._flush_wanted.set()

    def _flush_stale(self) -> None:
        """Until nothing is pending: flush the releases no acquire carried for ``FLUSH_DELAY``
        (at once while requests of this process wait in a queue), and every backend's
        statistics once a heartbeat period (rule 2)."""
        while True:
            marks = [(state, state.carried) for state in self._backends.values() if state.pending]
            others = self._pending_sticks or self._pending_observations or self._pending_errors
            tallies = any(not state.tally.is_empty() for state in self._backends.values())
            if not marks and not others and not tallies:
                return
            if self._flush_now:
                self._flush_now = False
            else:
                # a plain sleep: Event.wait with a timeout allocates a lock and arms a timer,
                # and under load this loop turns a hundred times a second
                time.sleep(FLUSH_DELAY)
            if self._stop.is_set():
                return
            if self._clock() - self._tallied_at >= HEARTBEAT_PERIOD:
                self.flush()
                continue
            stale = [state for state, mark in marks if state.carried == mark and state.pending]
            if stale or others:
                self.flush(stale)
            elif not marks:
                return  # only statistics, not yet due: the next release wakes this loop again

    def flush(self, states: Sequence[_BackendState] | None = None) -> None:
        """Send now, in one pipeline, the pending releases and statistics of ``states`` (every
        backend's when None), and the pending stick entries, errors and observations."""
        if states is None:
            self._tallied_at = self._clock()
        chosen = self._backends.values() if states is None else states
        taken = [(state, state.take_pending(), state.take_tally()) for state in chosen]
        taken = [item for item in taken if item[1] or not item[2].is_empty()]
        sticks, self._pending_sticks = self._pending_sticks, []
        observed, self._pending_observations = self._pending_observations, {}
        errors, self._pending_errors = self._pending_errors, {}
        if not taken and not sticks and not observed and not errors:
            return
        holder = self._holder
        batch = Batch(self._client, self._scripts)
        for (backend, name, kind), count in errors.items():
            batch.pipe.hincrby(backend_keys(backend).server(name), f"err_{kind}", count)
        observing = [
            (backend, name)
            for (backend, name), (run, reset, seen) in observed.items()
            if self._queue_observation(batch, backend, name, run, reset, seen)
        ]
        for entry, server in sticks:
            ttl = _ttl_ms(entry.ttl)
            batch.pipe.set(stick_key(entry.table, entry.key), server, px=ttl or None)
        for state, releases, tally in taken:
            self._queue_release(batch, state, releases, tally)
        try:
            replies = batch.execute()
        except REDIS_ERRORS:
            for state, releases, tally in taken:
                if self._holder == holder:  # else the reaper of the old holder gives them back
                    state.give_back_pending(releases)
                state.tally.merge(tally)
            self._pending_sticks[:0] = sticks
            raise
        self._log_observed(observing, replies[len(errors) : len(errors) + len(observing)])

    def _log_observed(self, observing: list[tuple[str, str]], replies: list[Any]) -> None:
        """Log, as the checker logs a check's verdict, a server that passive observation took
        down (or up): only the process whose batch crossed ``error-limit`` sees the change."""
        running = ("up", "going-down")
        for (backend, name), (before, after) in zip(observing, replies, strict=True):
            if (before in running) == (after in running):
                continue
            server = self._backends[backend].config.server(name)
            limit = server.error_limit if server else 0
            _health_log.warning(
                'Server %s/%s is %s, reason: Health analyze, info: "Detected %d consecutive '
                'errors".',
                backend,
                name,
                "UP" if after in running else "DOWN",
                limit,
            )

    def _queue_release(
        self, batch: Batch, state: _BackendState, releases: dict[str, int], tally: BackendTally
    ) -> None:
        """One release.lua call: the batched releases (from the hash of the id this process
        counts under now), then the statistics tally."""
        keys = state.keys
        args: list[Any] = [len(releases)]
        for name, count in releases.items():
            args += (name, count)
        servers, accounting = tally.script_args()
        script_keys = [keys.inflight, state.acquire_keys[2], keys.stats]
        script_keys += [keys.server(name) for name in servers]
        batch.script("release", script_keys, args + accounting)

    def _queue_observation(
        self, batch: Batch, backend: str, name: str, run: int, reset: int, errors: int
    ) -> bool:
        state = self._backends[backend]
        server = state.config.server(name)
        if server is None:
            return False
        batch.script(
            "observe",
            [state.keys.server(name)],
            [
                run,
                reset,
                errors,
                server.error_limit,
                server.on_error.value,
                server.rise,
                server.fall,
            ],
        )
        return True

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_PERIOD):
            try:
                self.refresh()
            except REDIS_ERRORS as error:
                self._mark_down(error)
            else:
                self._mark_up()

    def refresh(self, *, beat: bool = True) -> None:
        """One heartbeat: say this process is alive, reap dead workers, and reload the snapshot
        of every backend (admin and health state, weights, fleet-wide counts), in one pipeline."""
        if self._unregistered:
            self._register(self._unregistered)
            self._log.warning(
                "registered backends %s in Redis (the configuration was loaded while Redis "
                "was away)",
                ", ".join(backend.name for backend in self._unregistered),
            )
            self._unregistered = []
        states = list(self._backends.values())
        started = self._clock()
        batch = Batch(self._client, self._scripts)
        if self._time_in_pipeline:
            batch.pipe.time()
        for state in states:
            keys = state.keys
            if beat:
                batch.script(
                    "heartbeat",
                    [keys.workers, keys.inflight],
                    [keys.worker_prefix, self._holder, WORKER_TTL_MS],
                )
            for server in state.config.servers:
                batch.pipe.hmget(keys.server(server.name), STATE_FIELDS)
            batch.pipe.hgetall(keys.inflight)
            batch.pipe.exists(keys.servers)
        replies = batch.execute()
        if beat and states:
            self._beaten_at = started
        seconds, micros = replies[0] if self._time_in_pipeline else self._client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        position = 1 if self._time_in_pipeline else 0
        for state in states:
            position += 1 if beat else 0
            fields = replies[position : position + len(state.config.servers)]
            position += len(state.config.servers)
            counts = {name: int(count) for name, count in replies[position].items()}
            registered = bool(replies[position + 1])
            position += 2
            if not registered:
                self._restore(state)
                continue
            state.fleet_inflight = counts
            previous = state.view
            state.view = rebuild_view(state.config, previous, fields, counts, {}, now_ms)
            for name, before, after in transitions(previous, state.view):
                for listener in self._transition_listeners:
                    listener(state.config.name, name, before, after)

    def _restore(self, state: _BackendState) -> None:
        """Redis came back empty (a restart without persistence): describe the backend again,
        with the fleet's last known admin and health state, so every worker, `geoproxy state`
        and the stats page see it again without an operator."""
        self._log.warning(
            "backend %s is missing from Redis (restarted empty?): registering it again",
            state.config.name,
        )
        pipe = self._client.pipeline(transaction=False)
        self._write_backend(pipe, state.config, state.view)
        pipe.execute()

    def reap(self, worker_ids: Sequence[str]) -> int:
        """Give back at once what ``worker_ids`` (known dead) held, in every backend; returns
        how many were reaped. Called by the gunicorn master when a worker exits."""
        batch = Batch(self._client, self._scripts)
        for state in self._backends.values():
            keys = state.keys
            batch.script(
                "heartbeat",
                [keys.workers, keys.inflight],
                [keys.worker_prefix, "", WORKER_TTL_MS, *worker_ids],
            )
        return sum(int(count) for count in batch.execute())

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
