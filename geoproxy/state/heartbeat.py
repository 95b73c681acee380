"""The heartbeat of a process: it says the process is alive, reaps the dead, and reloads the
snapshot of every backend, in one pipeline (DESIGN.md invariants 2 and 4).

Rules:
1. Every live process reaps expired workers of any host on each heartbeat; the gunicorn master
   reaps its own dead workers at once (``reap``). A worker's hash records exactly what it held,
   so nothing leaks and nothing is given back twice.
2. A refresh that finds a backend missing from Redis (it restarted empty) describes it again
   with the last snapshot's admin and health state, so every worker, ``geoproxy state`` and the
   stats page see it again without an operator.
3. The snapshot's version is the Redis time of the refresh: the leastconn pool of a fresher
   snapshot wins over an older one in Redis (``state/pool.py``).
4. A process that follows the disabled frontends (a worker's listeners) reads them in the same
   pipeline (``frontend_admin.py``): no round trip of their own.
5. The server hashes (one HMGET a server) are read when the caller asks; otherwise the view
   is rebuilt from the last ones read, at the refresh's time (slowstart ramps on). A worker
   whose watcher tracks every write to them (redis_store.py) asks on each message it gets and
   on every ``FULL_EVERY``-th heartbeat only: with hundreds of servers and of workers, reading
   them all twice a second was the largest part of the fleet's load on Redis that no request
   caused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from geoproxy.balance.view import OperState
from geoproxy.config.model import Backend
from geoproxy.state import registry
from geoproxy.state.backend_state import BackendState
from geoproxy.state.connect import Client
from geoproxy.state.frontend_admin import queue_disabled
from geoproxy.state.keys import BACKENDS, HASHTABLE_PAD, PAD_ABOVE
from geoproxy.state.scripts import Batch, Scripts
from geoproxy.state.snapshot import STATE_FIELDS, rebuild_view, shutdown_requests, transitions

HEARTBEAT_PERIOD = 0.5  # seconds between two heartbeats (and snapshot refreshes) of a process
WORKER_TTL_MS = 1500  # a worker whose last heartbeat is older than this is dead
FULL_EVERY = 4  # while the watcher tracks every write, the heartbeats that read server hashes

# (backend, server, health before, health after), called from the snapshot refresh
TransitionListener = Callable[[str, str, OperState, OperState], None]


class Heartbeat:
    """One process's heartbeat over its backends (``backends`` is the owner's, shared)."""

    def __init__(
        self,
        client: Client,
        scripts: Scripts,
        backends: dict[str, BackendState],
        log: logging.Logger,
        *,
        time_in_pipeline: bool,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._backends = backends
        self._log = log
        # A Cluster pipeline cannot carry TIME (no key to route it by): ask it apart.
        self._time_in_pipeline = time_in_pipeline
        self.listeners: list[TransitionListener] = []
        # (backend, server): an operator asked to shut that server's sessions down
        self.shutdown_listeners: list[Callable[[str, str], None]] = []
        self.unregistered: list[Backend] = []  # to register once Redis answers
        # the names of the disabled frontends, at every refresh (rule 4)
        self.frontend_listeners: list[Callable[[frozenset[str]], None]] = []

    def refresh(self, holder: str, *, beat: bool = True, servers: bool = True) -> int:
        """One heartbeat under ``holder`` (``beat``: count it among the live workers; the
        registering master and tools are none; ``servers``: read the server hashes, else
        rebuild each view from the last ones read, rule 5). Returns the Redis time, ms."""
        if self.unregistered:
            registry.register(self._client, self.unregistered)
            self._log.warning(
                "registered backends %s in Redis (the configuration was loaded while Redis "
                "was away)",
                ", ".join(backend.name for backend in self.unregistered),
            )
            self.unregistered = []
        states = list(self._backends.values())
        # (as they are now: one may be added while the pipeline is out)
        frontend_listeners = list(self.frontend_listeners)
        batch = Batch(self._client, self._scripts)
        if self._time_in_pipeline:
            batch.pipe.time()
        # the backends whose server hashes this refresh reads (a backend never read: always)
        reading = [servers or state.server_fields is None for state in states]
        for state, read in zip(states, reading, strict=True):
            keys = state.keys
            if beat:
                batch.script(
                    "heartbeat",
                    [keys.workers, keys.inflight],
                    [keys.worker_prefix, holder, WORKER_TTL_MS],
                )
            if read:
                for server in state.config.servers:
                    batch.pipe.hmget(keys.server(server.name), STATE_FIELDS)
            batch.pipe.hgetall(keys.inflight)
            batch.pipe.sismember(BACKENDS, state.config.name)
        for state in states:  # after every reply read by position (keys.PAD_ABOVE)
            if len(state.config.servers) > PAD_ABOVE:
                batch.pipe.hsetnx(state.keys.inflight, HASHTABLE_PAD, 0)
                if beat:
                    batch.pipe.hsetnx(state.keys.worker(holder), HASHTABLE_PAD, 0)
        if frontend_listeners:
            queue_disabled(batch.pipe)  # last: its reply is the last one
        replies = batch.execute()
        seconds, micros = replies[0] if self._time_in_pipeline else self._client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        position = 1 if self._time_in_pipeline else 0
        for state, read in zip(states, reading, strict=True):
            position += 1 if beat else 0
            if read:
                fields = replies[position : position + len(state.config.servers)]
                position += len(state.config.servers)
                state.server_fields = fields
            else:
                fields = state.server_fields or []
            counts = {name: int(count) for name, count in replies[position].items()}
            registered = bool(replies[position + 1])
            position += 2
            if not registered:
                self._log.warning(
                    "backend %s is missing from Redis (restarted empty?): registering it again",
                    state.config.name,
                )
                registry.restore(self._client, state.config, state.view)
                continue
            state.saw_counts(counts)
            previous = state.view
            state.view = rebuild_view(state.config, previous, fields, counts, {}, now_ms)
            state.view_version = now_ms
            for name, before, after in transitions(previous, state.view):
                for listener in self.listeners:
                    listener(state.config.name, name, before, after)
            for name in shutdown_requests(previous, state.view):
                for shutdown in self.shutdown_listeners:
                    shutdown(state.config.name, name)
        if frontend_listeners:
            disabled = frozenset(replies[-1])
            for follow in frontend_listeners:
                follow(disabled)
        return now_ms

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
