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
   carry them all and the flusher sends nothing.
3. The fleet-wide truth is in Redis: ``inflight[s]`` equals the sum of the live workers'
   ``w:<id>[s]``, kept so by every script. A worker's hash is what the reaper gives back when
   the worker dies (DESIGN.md invariant 2): the gunicorn master reaps its own dead workers at
   once, and every live process reaps expired workers of any host on each heartbeat.
4. While Redis is unreachable, decisions are local (this process's own counts) and leases are
   marked unshared; the outage and the recovery are each logged once (invariant 4).
5. This worker's entry in the live-workers set is refreshed at least every ``HEARTBEAT_PERIOD``
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

import redis

from geoproxy.balance.policy import Ranking
from geoproxy.balance.rank import decide
from geoproxy.balance.view import AdminState, BackendView, OperState, ServerView
from geoproxy.config.model import Backend
from geoproxy.state.fastpath import fast_caller
from geoproxy.state.keys import BACKENDS, BackendKeys, backend_keys, stick_key
from geoproxy.state.scripts import Scripts, execute
from geoproxy.state.store import (
    BackendReport,
    Lease,
    ServerReport,
    StickEntry,
    StickRequest,
)

HEARTBEAT_PERIOD = 0.5  # seconds between two heartbeats (and snapshot refreshes) of a process
WORKER_TTL_MS = 1500  # a worker whose last heartbeat is older than this is dead
FLUSH_DELAY = 0.01  # how long a release may wait for an acquire to carry it, seconds
REDIS_TIMEOUT = 0.5  # socket timeout for every Redis call, seconds
RETRY_AFTER = 1.0  # after a failure, the request path leaves Redis alone this long, seconds

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

_STATE_FIELDS = ("admin", "oper", "weight")


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
    fleet_inflight: dict[str, int] = field(default_factory=dict)
    local_inflight: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    carried: int = 0  # how many acquires carried this backend's pending releases

    def take_pending(self) -> dict[str, int]:
        taken, self.pending = self.pending, {}
        return taken

    def give_back_pending(self, taken: dict[str, int]) -> None:
        for name, count in taken.items():
            self.pending[name] = self.pending.get(name, 0) + count


def _initial_view(backend: Backend) -> BackendView:
    return BackendView(
        name=backend.name,
        servers=tuple(
            ServerView(
                name=server.name,
                index=index,
                weight=server.weight,
                backup=server.backup,
                admin=AdminState.MAINT if server.disabled else AdminState.READY,
                oper=OperState.UP,
                maxconn=server.maxconn,
                maxqueue=server.maxqueue,
                cookie=server.cookie,
            )
            for index, server in enumerate(backend.servers)
        ),
    )


class RedisFleetState:
    """``FleetState`` on one Redis (a single server; Sentinel and Cluster come through the
    same client interface)."""

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
        self._clock = clock
        self._client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        self._scripts = Scripts()
        self._fast = fast_caller(url, REDIS_TIMEOUT)
        self._backends: dict[str, _BackendState] = {}
        self._pending_sticks: list[tuple[StickEntry, str]] = []
        self._down_until = 0.0
        self._beaten_at = float("-inf")  # when this worker's liveness was last refreshed
        self._degraded = False
        self._stop = threading.Event()
        self._flush_wanted = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- set-up -------------------------------------------------------------------------------

    def register(self, backends: Sequence[Backend]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for backend in backends:
            keys = backend_keys(backend.name)
            pipe.sadd(BACKENDS, backend.name)
            configured = {server.name for server in backend.servers}
            for index, server in enumerate(backend.servers):
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
                    },
                )
                # Operator and checker state survives restarts and reloads: set only if absent.
                pipe.hsetnx(key, "admin", "maint" if server.disabled else "ready")
                pipe.hsetnx(key, "oper", "up")
                pipe.hsetnx(key, "weight", server.weight)
            pipe.execute()
            self._forget_removed_servers(keys, configured)
        self.attach(backends)

    def _forget_removed_servers(self, keys: BackendKeys, configured: set[str]) -> None:
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

    def attach(self, backends: Sequence[Backend]) -> None:
        for backend in backends:
            keys = backend_keys(backend.name)
            self._backends[backend.name] = _BackendState(
                config=backend,
                keys=keys,
                acquire_keys=[keys.inflight, keys.total, keys.worker(self.worker_id), keys.workers],
                view=_initial_view(backend),
            )
        try:
            self.refresh()
        except REDIS_ERRORS as error:
            self._mark_down(error)

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
            try:
                reply = self._scripts.call(self._client, "acquire", keys, args, self._fast)
            except REDIS_ERRORS as error:
                state.give_back_pending(taken)
                self._mark_down(error)
            else:
                self._mark_up()
                if beat:
                    self._beaten_at = now
                return self._lease_from_reply(state, reply)
        return self._acquire_locally(state, ranking)

    def _acquire_args(self, ranking: Ranking, releases: dict[str, int], beat: bool) -> list[Any]:
        args: list[Any] = [
            self.worker_id,
            WORKER_TTL_MS if beat else 0,
            ranking.mode.value,
            len(ranking.candidates),
        ]
        for candidate in ranking.candidates:
            args += (candidate.name, candidate.weight, candidate.maxconn)
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
        args += [_ttl_ms(entry.ttl) for entry in stick.stores]
        return keys, args

    def _lease_from_reply(self, state: _BackendState, reply: list[Any]) -> Lease | None:
        name = reply[0]
        if not name:
            return None
        state.local_inflight[name] = state.local_inflight.get(name, 0) + 1
        return Lease(state.config.name, name, shared=True, stuck=bool(reply[1]))

    def stick_store(self, entries: Sequence[StickEntry], server: str) -> None:
        if not entries:
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
        if not lease.shared:
            return
        pending = state.pending
        pending[lease.server] = pending.get(lease.server, 0) + 1
        if not self._flush_wanted.is_set():
            self._flush_wanted.set()

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
        """Flush, until nothing is pending, what no acquire carried for ``FLUSH_DELAY``."""
        while True:
            marks = [(state, state.carried) for state in self._backends.values() if state.pending]
            if not marks and not self._pending_sticks:
                return
            # a plain sleep: Event.wait with a timeout allocates a lock and arms a timer,
            # and under load this loop turns a hundred times a second
            time.sleep(FLUSH_DELAY)
            if self._stop.is_set():
                return
            stale = [state for state, mark in marks if state.carried == mark and state.pending]
            if stale or self._pending_sticks:
                self.flush(stale)

    def flush(self, states: Sequence[_BackendState] | None = None) -> None:
        """Send the pending releases (of ``states``, else of every backend) and stick entries
        now, in one pipeline."""
        chosen = self._backends.values() if states is None else states
        taken = [(state, state.take_pending()) for state in chosen]
        taken = [(state, releases) for state, releases in taken if releases]
        sticks, self._pending_sticks = self._pending_sticks, []
        if not taken and not sticks:
            return
        pipe = self._client.pipeline(transaction=False)
        for entry, server in sticks:
            ttl = _ttl_ms(entry.ttl)
            pipe.set(stick_key(entry.table, entry.key), server, px=ttl or None)
        for state, releases in taken:
            args: list[Any] = []
            for name, count in releases.items():
                args += (name, count)
            keys = [state.keys.inflight, state.keys.worker(self.worker_id)]
            self._scripts.queue(pipe, "release", keys, args)
        try:
            execute(pipe, self._scripts, self._client)
        except REDIS_ERRORS:
            for state, releases in taken:
                state.give_back_pending(releases)
            self._pending_sticks[:0] = sticks
            raise

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
        states = list(self._backends.values())
        started = self._clock()
        pipe = self._client.pipeline(transaction=False)
        for state in states:
            keys = state.keys
            if beat:
                self._scripts.queue(
                    pipe,
                    "heartbeat",
                    [keys.workers, keys.inflight],
                    [keys.worker_prefix, self.worker_id, WORKER_TTL_MS],
                )
            for server in state.config.servers:
                pipe.hmget(keys.server(server.name), _STATE_FIELDS)
            pipe.hgetall(keys.inflight)
        replies = execute(pipe, self._scripts, self._client)
        if beat and states:
            self._beaten_at = started
        position = 0
        for state in states:
            position += 1 if beat else 0
            fields = replies[position : position + len(state.config.servers)]
            position += len(state.config.servers)
            counts = {name: int(count) for name, count in replies[position].items()}
            position += 1
            state.fleet_inflight = counts
            state.view = self._rebuilt_view(state, fields, counts)

    @staticmethod
    def _rebuilt_view(
        state: _BackendState, fields: list[list[str | None]], counts: dict[str, int]
    ) -> BackendView:
        servers = []
        for view, (admin, oper, weight) in zip(state.view.servers, fields, strict=True):
            servers.append(
                dataclasses.replace(
                    view,
                    admin=AdminState(admin) if admin else view.admin,
                    oper=OperState(oper) if oper else view.oper,
                    weight=int(weight) if weight is not None else view.weight,
                    inflight=counts.get(view.name, 0),
                )
            )
        return BackendView(state.view.name, tuple(servers))

    def reap(self, worker_ids: Sequence[str]) -> int:
        """Give back at once what ``worker_ids`` (known dead) held, in every backend; returns
        how many were reaped. Called by the gunicorn master when a worker exits."""
        pipe = self._client.pipeline(transaction=False)
        for state in self._backends.values():
            keys = state.keys
            self._scripts.queue(
                pipe,
                "heartbeat",
                [keys.workers, keys.inflight],
                [keys.worker_prefix, "", WORKER_TTL_MS, *worker_ids],
            )
        return sum(int(count) for count in execute(pipe, self._scripts, self._client))

    # -- reading for tools --------------------------------------------------------------------

    def report(self) -> list[BackendReport]:
        """Every registered backend as ``geoproxy state`` prints it, read from Redis alone."""
        seconds, micros = self._client.time()
        now_ms = seconds * 1000 + micros // 1000
        reports = []
        for name in sorted(cast(set[str], self._client.smembers(BACKENDS))):
            keys = backend_keys(name)
            servers = cast(list[str], self._client.zrange(keys.servers, 0, -1))
            pipe = self._client.pipeline(transaction=False)
            for server in servers:
                pipe.hgetall(keys.server(server))
            pipe.hgetall(keys.inflight)
            pipe.hgetall(keys.total)
            pipe.zcount(keys.workers, now_ms, "+inf")
            *details, inflight, total, live = pipe.execute()
            rows = tuple(
                ServerReport(
                    name=server,
                    address=detail.get("addr", ""),
                    admin=detail.get("admin", ""),
                    oper=detail.get("oper", ""),
                    weight=int(detail.get("weight", 0)),
                    inflight=int(inflight.get(server, 0)),
                    total=int(total.get(server, 0)),
                    backup=detail.get("backup") == "1",
                )
                for server, detail in zip(servers, details, strict=True)
            )
            reports.append(BackendReport(name=name, servers=rows, live_workers=int(live)))
        return reports

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._client.close()
