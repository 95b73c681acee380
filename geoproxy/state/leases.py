"""Taking and giving back servers: the request path of the fleet state.

Rules:
1. An acquire is one job in its backend's group commit (``group_commit.py``): the requests of a
   worker that want a server of one backend while a call is out leave together, with the
   releases batched meanwhile, as one ``acquire.lua`` call. That call is the request's only
   Redis round trip in steady state (DESIGN.md invariant 1); a second one happens only when the
   script asks for more than the first carried (Redis lost the leastconn pool, or every
   candidate of a partial list was full).
2. What a request sends is small whatever the number of servers: a leastconn request names the
   pool (``state/pool.py``); a first-with-room ranking sends its candidates up to the first
   without maxconn, or up to ``ROOMY`` that the snapshot believes have room (``partial``).
3. Releases are counted into ``BackendState.pending`` and leave it in exactly one way: swapped
   out by the next call of their backend's group commit (a request's, or the flusher's when no
   request came for ``FLUSH_DELAY``). When the call fails they stay with the old holder, whose
   reaper gives them back (outage.py rule 2): a count is never lost and never given back twice.
4. While Redis is unreachable, decisions are local (this process's own counts) and leases are
   marked unshared (``Outage``).
5. The worker's entry in the live-workers set is refreshed at least every heartbeat period:
   by the heartbeat, or by a call when the last refresh is that old.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.rank import decide
from geoproxy.balance.view import ServerView
from geoproxy.state.backend_state import BackendState
from geoproxy.state.connect import REDIS_ERRORS, Client
from geoproxy.state.fastpath import FastCaller
from geoproxy.state.group_commit import Job
from geoproxy.state.heartbeat import HEARTBEAT_PERIOD, WORKER_TTL_MS
from geoproxy.state.keys import stick_key
from geoproxy.state.outage import Outage
from geoproxy.state.pool import NO_POOL_ARGS
from geoproxy.state.scripts import Scripts
from geoproxy.state.store import Lease, QueueUnavailable, StickEntry, StickRequest, Ticket

ROOMY = 4  # a partial first-with-room list holds this many candidates believed to have room
_FIRST = PickMode.FIRST_WITH_ROOM
_LEAST = PickMode.LEAST_LOADED


def _partial_end(candidates: tuple[ServerView, ...]) -> int:
    """How many of a first-with-room ranking to send (rule 2): up to the first without maxconn
    (it always has room), or to the ``ROOMY``-th the snapshot believes has room."""
    roomy = 0
    for position, server in enumerate(candidates):
        if server.maxconn == 0:
            return position + 1
        if server.inflight < server.maxconn:
            roomy += 1
            if roomy == ROOMY:
                return position + 1
    return len(candidates)


def ttl_ms(ttl: float | None) -> int:
    """A stick entry's lifetime for Redis: milliseconds, 0 for none."""
    return max(int(ttl * 1000), 1) if ttl else 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Wish:
    """What one request asks of ``acquire.lua``; ``whole``: send its whole ranking."""

    ranking: Ranking
    stick: StickRequest | None
    whole: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    """``acquire.lua``'s answer to one request, and the holder it was counted under."""

    server: str | None
    stuck: bool
    count: int
    resend: bool
    holder: str


class Leases:
    """acquire, queue, release for one process (``backends`` is the owner's, shared)."""

    def __init__(
        self,
        client: Client,
        scripts: Scripts,
        fast: FastCaller | None,
        outage: Outage,
        backends: dict[str, BackendState],
        *,
        clock: Callable[[], float] = time.monotonic,
        wake_flusher: Callable[[bool], None],
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._fast = fast
        self._outage = outage
        self._backends = backends
        self._clock = clock
        self._wake_flusher = wake_flusher
        self.beaten_at = float("-inf")  # when this worker's liveness was last refreshed
        outage.on_new_holder(self._forget_pending)

    # -- acquire ---------------------------------------------------------------------------

    def acquire(
        self, backend: str, ranking: Ranking, stick: StickRequest | None = None
    ) -> Lease | None:
        state = self._backends[backend]
        if self._outage.may_call():
            job = state.group.submit(Job(_Wish(ranking, stick, False)))
            answer: _Answer | None = job.outcome
            if answer is not None and answer.resend:
                job = state.group.submit(Job(_Wish(ranking, stick, True)))
                answer = job.outcome
            if answer is not None and not answer.resend:
                return self._lease(state, answer)
        return self._acquire_locally(state, ranking)

    def send(self, state: BackendState, batch: list[Job]) -> None:
        """The group commit's call: one ``acquire.lua`` for ``batch`` (rule 1), or one
        ``release.lua`` when it holds only the flusher's wish to give back releases."""
        holder = self._outage.holder
        keys_of = state.keys
        wishes: list[_Wish] = [job.wish for job in batch if job.wish is not None]
        releases = state.take_pending()
        state.carried += 1
        release_args: list[Any] = [len(releases)]
        for name, count in releases.items():
            release_args += (name, count)
        now = self._clock()
        beat = False
        pool = None
        if wishes:
            name, keys = "acquire", [
                keys_of.inflight,
                keys_of.worker(holder),
                keys_of.workers,
                keys_of.least,
                keys_of.pool,
                keys_of.queue_deadlines,
                keys_of.queue,
            ]
            beat = now - self.beaten_at >= HEARTBEAT_PERIOD
            args: list[Any] = [
                holder,
                WORKER_TTL_MS if beat else 0,
                keys_of.queue_prefix if state.has_queues else "",
                *release_args,
            ]
            for wish in wishes:
                if wish.ranking.pool is not None and wish.ranking.mode is _LEAST:
                    pool = state.pool_for(wish.ranking.pool)
                    if wish.whole:
                        pool.held = pool.superseded = False
            args += pool.args() if pool is not None else NO_POOL_ARGS
            args.append(len(wishes))
            for wish in wishes:
                self._encode(wish, keys, args)
        else:
            name, args = "release", release_args
            keys = [keys_of.inflight, keys_of.worker(holder), keys_of.least, keys_of.pool]
        try:
            reply = self._scripts.call(self._client, name, keys, args, self._fast)
        except REDIS_ERRORS as error:
            state.give_back_pending(releases)
            self._outage.failed(error, counted=True)  # rule 3: the pending go with the holder
            for job in batch:
                job.failed = True
            return
        self._outage.answered()
        if not wishes:
            for job in batch:
                job.outcome = True
            return
        if beat:
            self.beaten_at = now
        if pool is not None:
            pool.answered(int(reply[0]))
        at = 1
        for job in batch:
            if job.wish is None:
                job.outcome = True
                continue
            server, stuck, count, resend = reply[at : at + 4]
            at += 4
            job.outcome = _Answer(server or None, bool(stuck), int(count), bool(resend), holder)

    @staticmethod
    def _encode(wish: _Wish, keys: list[str], args: list[Any]) -> None:
        """One request's part of ``acquire.lua``'s arguments (rule 2), and its stick keys."""
        ranking = wish.ranking
        stick = wish.stick
        sticky = "" if stick is None else "+"
        if ranking.pool is not None and ranking.mode is _LEAST:
            args.append("P" + sticky)
        else:
            candidates = ranking.candidates
            partial = ""
            if ranking.mode is _FIRST and not wish.whole:
                end = _partial_end(candidates)
                if end < len(candidates):
                    partial, candidates = "~", candidates[:end]
            args += ("F" if ranking.mode is _FIRST else "L") + partial + sticky, len(candidates)
            for server in candidates:
                args += (server.name, server.weight, server.maxconn)
        if stick is None:
            return
        keys += [stick_key(e.table, e.key) for e in stick.lookups]
        keys += [stick_key(e.table, e.key) for e in stick.stores]
        args += (len(stick.lookups), len(stick.stores), len(stick.allowed))
        for server in stick.allowed:
            args += (server.name, server.maxconn)
        args += [ttl_ms(entry.ttl) for entry in stick.lookups]
        args += [ttl_ms(entry.ttl) for entry in stick.stores]

    def _lease(self, state: BackendState, answer: _Answer) -> Lease | None:
        name = answer.server
        if name is None:
            return None
        if state.config.server(name) is None:
            # a newer pool, from a configuration this process does not run yet (a reload in
            # progress), chose a server it does not know: give the slot back, decide locally
            state.pending[name] = state.pending.get(name, 0) + 1
            return None
        state.saw_count(name, answer.count)
        local = state.local_inflight
        local[name] = local.get(name, 0) + 1
        state.tally.saw_acquire(name, answer.count, state.fleet_total)
        return Lease(state.config.name, name, True, answer.stuck, answer.holder)

    def _acquire_locally(self, state: BackendState, ranking: Ranking) -> Lease | None:
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

    # -- queue -----------------------------------------------------------------------------

    def queue_acquire(self, backend: str, ranking: Ranking, ticket: Ticket) -> Lease | int | None:
        """Wait in line for a slot: a ``Lease`` when served, else the ticket's rank in its
        queue; None when the queue is full (``maxqueue``). Raises on Redis errors (a queued
        request cannot be served from local counts)."""
        state = self._backends[backend]
        keys = state.keys
        queue = keys.server_queue(ticket.server) if ticket.server else keys.queue
        holder = self._outage.holder
        args: list[Any] = [holder, WORKER_TTL_MS, ranking.mode.value, len(ranking.candidates)]
        for candidate in ranking.candidates:
            args += (candidate.name, candidate.weight, candidate.maxconn)
        args += (ticket.id, ticket.wait_ms, ticket.maxqueue)
        script_keys = [keys.inflight, keys.worker(holder), keys.workers, queue]
        script_keys += [keys.queue_deadlines, keys.queue_sequence, keys.least, keys.pool]
        try:
            reply = self._scripts.call(self._client, "queue", script_keys, args, self._fast)
        except REDIS_ERRORS as error:
            self._outage.failed(error, counted=True)
            raise QueueUnavailable(str(error)) from error
        name, rank = reply
        if name:
            state.local_inflight[name] = state.local_inflight.get(name, 0) + 1
            state.contended_until = self._clock() + 1.0
            state.tally.saw_acquire(name, state.fleet_inflight.get(name, 0), state.fleet_total)
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

    # -- release ---------------------------------------------------------------------------

    def release(self, lease: Lease) -> None:
        state = self._backends[lease.backend]
        local = state.local_inflight
        local[lease.server] = max(local.get(lease.server, 0) - 1, 0)
        if not lease.shared or lease.holder != self._outage.holder:
            return  # counted locally only, or by an old holder that the reaper gives back
        pending = state.pending
        pending[lease.server] = pending.get(lease.server, 0) + 1
        # Someone waits in a queue, or this process has nothing else in flight in this backend
        # (no acquire will come soon to carry it): give the slot back at once, so that other
        # workers' leastconn sees the true count.
        now = (state.contended_until and self._clock() < state.contended_until) or not any(
            local.values()
        )
        self._wake_flusher(bool(now))

    def flush_releases(self, state: BackendState) -> None:
        """Send ``state``'s pending releases in a call of their own (the flusher's)."""
        if state.pending:
            state.group.submit(Job(None))

    def _forget_pending(self, holder: str) -> None:
        for state in self._backends.values():
            state.pending = {}

    # -- stick tables ----------------------------------------------------------------------

    def stick_store(
        self, entries: Sequence[StickEntry], server: str, later: list[tuple[StickEntry, str]]
    ) -> None:
        """Write ``entries`` now (a browser's next request comes within a millisecond, perhaps
        to another worker, and must find the session it was just given); while Redis is away,
        into ``later`` for the flusher."""
        if self._outage.may_call():
            pipe = self._client.pipeline(transaction=False)
            for entry in entries:
                pipe.set(stick_key(entry.table, entry.key), server, px=ttl_ms(entry.ttl) or None)
            try:
                pipe.execute()
            except REDIS_ERRORS as error:
                self._outage.failed(error)
            else:
                self._outage.answered()
                return
        later.extend((entry, server) for entry in entries)
