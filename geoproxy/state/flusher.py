"""What leaves a process off the request path: changes to the counts no request carried,
statistics, errors, passive-health observations and stick entries written while Redis was away.

Rules:
1. A backend's changes to this process's counts (``BackendState.pending``: releases, and the
   requests decided without a call, leases.py rule 2) wait for a request's call to carry them
   at most ``SHARE_DELAY`` while this worker counts the backend's plain requests without calls
   (then these calls alone count them), else ``FLUSH_DELAY`` (under load, its requests' calls
   carry every change); then the flusher sends them through the same group commit, on the same
   raw connection, as plain commands in one MULTI/EXEC. A release that leaves the process with
   nothing in flight in its backend, or while requests of this process wait in a queue, goes
   at once: other workers' leastconn and queues must see the true count.
2. Statistics (sessions, bytes, retries, maxima, per-frontend figures) accumulate in the
   process and leave at most once per ``STATS_PERIOD`` per backend, one ``stats.lua`` call each,
   on the raw-socket path: like HAProxy's per-thread counters, they are exact per process and
   summed at read time.
3. Errors, observations and stick entries are rare: one redis-py pipeline per flush.
4. A flush that fails keeps what it took (merged back) for the next one; nothing is lost or
   counted twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from geoproxy.state.backend_state import BackendState
from geoproxy.state.connect import REDIS_ERRORS, Client
from geoproxy.state.fastpath import FastCaller
from geoproxy.state.keys import backend_keys, stick_key
from geoproxy.state.leases import BEHIND_GAP, Leases, ttl_ms
from geoproxy.state.outage import RETRY_AFTER, Outage
from geoproxy.state.scripts import Batch, Scripts
from geoproxy.state.store import StickEntry

# How long a backend's changes to the counts may wait for a call to carry them, seconds: while
# the worker counts its plain requests without calls, these calls alone count them, so they set
# how often a busy worker writes (Redis's cost of a call is shared by the requests of this
# window) and how old other workers' view of its requests may be; otherwise short, because
# other workers' leastconn and queues wait for the releases.
FLUSH_DELAY = 0.002
SHARE_DELAY = 0.010
STATS_PERIOD = 1.0  # seconds between two statistics flushes of a backend

_health_log = logging.getLogger("geoproxy.health")


class Flusher:
    """The flusher loop of one process and what it sends (``backends`` is the owner's)."""

    def __init__(
        self,
        client: Client,
        scripts: Scripts,
        fast: FastCaller | None,
        outage: Outage,
        backends: dict[str, BackendState],
        leases: Leases,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._fast = fast
        self._outage = outage
        self._backends = backends
        self._leases = leases
        self._clock = clock
        self.sticks: list[tuple[StickEntry, str]] = []
        self.errors: dict[tuple[str, str, str], int] = {}
        # (backend, server) -> [errors since the last success, saw a success, all errors]
        self.observations: dict[tuple[str, str], list[int]] = {}
        self._stats_at = 0.0
        self._now = False
        self.wanted = threading.Event()
        self._hurry = threading.Event()  # set with ``_now``: ends the wait for a delay

    def wake(self, now: bool = False) -> None:
        """Something waits to be sent; ``now``: without waiting out its delay (rule 1)."""
        if now:
            self._now = True
            self._hurry.set()
        if not self.wanted.is_set():
            self.wanted.set()

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.wanted.wait()
            self.wanted.clear()
            try:
                self._flush_due(stop)
            except REDIS_ERRORS as error:
                self._outage.failed(error)
                stop.wait(RETRY_AFTER)
                self.wanted.set()

    def _flush_due(self, stop: threading.Event) -> None:
        """Until nothing is pending: each backend's changes once they waited their delay and
        no call carried them, the rare things at once, the statistics once per
        ``STATS_PERIOD``."""
        while True:
            backends = self._backends.values()
            due = [state for state in backends if state.pending or state.counts_wanted]
            rare = self.sticks or self.observations or self.errors
            tallies = any(not state.tally.is_empty() for state in backends)
            if not due and not rare and not tallies:
                return
            hurry = self._now
            if hurry:
                self._now = False
            else:
                now = self._clock()
                wait = FLUSH_DELAY if rare or not due else SHARE_DELAY
                for state in due:
                    wait = min(wait, state.pending_since + _delay(state, now) - now)
                if wait > 0:
                    self._hurry.wait(wait)
                self._hurry.clear()
                hurry = self._now
                self._now = False
            if stop.is_set():
                return
            now = self._clock()
            for state in due:
                waiting = state.pending or state.counts_wanted
                if waiting and (hurry or now - state.pending_since >= _delay(state, now)):
                    self._leases.flush_pending(state)
            if rare:
                self.flush_rare()
            if tallies and self._clock() - self._stats_at >= STATS_PERIOD:
                self.flush_stats()
            elif not due and not rare:
                return  # only statistics, not yet due: the next change wakes this loop again

    def flush(self) -> None:
        """Send everything pending now (at stop, and in tests)."""
        for state in list(self._backends.values()):
            self._leases.flush_pending(state)
        self.flush_rare()
        self.flush_stats()

    def flush_stats(self) -> None:
        """One ``stats.lua`` call per backend with statistics (rule 2)."""
        self._stats_at = self._clock()
        for state in list(self._backends.values()):
            if state.tally.is_empty():
                continue
            tally = state.take_tally()
            servers, args = tally.script_args()
            keys = [state.keys.stats, state.keys.total, state.keys.servers]
            keys += [state.keys.server_stats(name) for name in servers]
            try:
                self._scripts.call(self._client, "stats", keys, args, self._fast)
            except REDIS_ERRORS:
                state.tally.merge(tally)
                raise

    def flush_rare(self) -> None:
        """Errors, observations and stick entries, in one pipeline (rule 3)."""
        sticks, self.sticks = self.sticks, []
        observed, self.observations = self.observations, {}
        errors, self.errors = self.errors, {}
        if not sticks and not observed and not errors:
            return
        batch = Batch(self._client, self._scripts)
        for (backend, name, kind), count in errors.items():
            batch.pipe.hincrby(backend_keys(backend).server_stats(name), f"err_{kind}", count)
        observing = [
            (backend, name)
            for (backend, name), (run, reset, seen) in observed.items()
            if self._queue_observation(batch, backend, name, run, reset, seen)
        ]
        for entry, server in sticks:
            batch.pipe.set(stick_key(entry.table, entry.key), server, px=ttl_ms(entry.ttl) or None)
        try:
            replies = batch.execute()
        except REDIS_ERRORS:
            self.sticks[:0] = sticks
            for key, count in errors.items():
                self.errors[key] = self.errors.get(key, 0) + count
            raise
        self._log_observed(observing, replies[len(errors) : len(errors) + len(observing)])

    def _queue_observation(
        self, batch: Batch, backend: str, name: str, run: int, reset: int, errors: int
    ) -> bool:
        state = self._backends[backend]
        server = state.config.server(name)
        if server is None:
            return False
        batch.script(
            "observe",
            [state.keys.server(name), state.keys.server_stats(name)],
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

    def _log_observed(self, observing: Sequence[tuple[str, str]], replies: list[Any]) -> None:
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


def _delay(state: BackendState, now: float) -> float:
    """How long ``state``'s changes may wait for a call to carry them (rule 1): a busy
    worker's plain requests of the last window are counted by these calls alone."""
    behind = state.plain_gap < BEHIND_GAP and now - state.plain_at < SHARE_DELAY
    return SHARE_DELAY if behind else FLUSH_DELAY
