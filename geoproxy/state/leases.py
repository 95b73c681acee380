"""Taking and giving back servers: the request path of the fleet state.

Rules:
1. An acquire is one job in its backend's group commit (``group_commit.py``): the requests of a
   worker that want a server of one backend while a call is out leave together, with the
   releases batched meanwhile, in one round trip. That call is the request's only Redis round
   trip in steady state (DESIGN.md invariant 1; a busy worker's plain requests make none, rule
   2); a second one happens only when the script asks for more than the first carried (every
   candidate of a partial list was full).
2. A request whose choice needs no check against the fleet (no candidate has maxconn, so no
   queue either, and no stick-table entry: most requests of most backends) is decided here, by
   the same rule as the script (``rank.decide``), over the fleet's counts as this worker's
   calls last read them plus its own changes not yet sent (``BackendState.fleet_inflight``),
   when that reading is at most ``FRESH`` old. In a gevent worker whose plain requests to the
   backend come less than ``BEHIND_GAP`` apart on average, such a request makes no call at
   all: it is counted into ``BackendState.pending`` and the flusher sends the worker's changes
   at most ``SHARE_DELAY`` later (flusher.py rule 1), so a call, and its cost to Redis, is
   shared by every request of that window however busy the worker is. Other workers see those
   requests once that call has left and their own next reading came (tens of milliseconds at
   most). Otherwise (a quieter worker, or outside a gevent worker) the request is one job in
   the group commit: decided the same way, then counted by its call before it goes on, so the
   next decision reads every request the fleet counted before that call. Either way the
   call is plain commands in one MULTI/EXEC (increments, and the counts read back for the next
   decision), which costs Redis a tenth of a script call (on any topology: the keys of one
   backend share a hash tag, so one Cluster node runs it). Every other request, and every
   request of a worker whose counts are older (an idle one), goes through ``acquire.lua``,
   exact to the request.
3. What a scripted request sends stays small: a first-with-room ranking sends its candidates up
   to the first without maxconn, or up to ``ROOMY`` that the counts say have room; a
   least-loaded one over more than ``LISTED`` servers sends the ``LISTED`` least loaded by
   those counts. Either list is ``partial``: the script asks for the whole ranking when none of
   it has room. A call made because the counts are older than ``FRESH`` lists the whole
   ranking of its first least-loaded request: the script's answer, every count, makes them
   fresh again (else a large backend's calls would stay scripts).
4. Releases, and the requests counted without a call (rule 2), are counted into
   ``BackendState.pending`` (signed: +1 a request, -1 a release; the two cancel out) and
   leave it in exactly one way: swapped out by the next call of their backend's group commit
   (a request's, or the flusher's). When the call fails they stay with the old holder, whose
   reaper gives back what reached Redis (outage.py rule 2): a count is never lost and never
   given back twice. A worker's hash going below zero means the reaper took this holder for
   dead while it lived: the over-release is put back, and the process counts under a new
   holder from then on.
5. While Redis is unreachable, decisions are local (this process's own counts) and leases are
   marked unshared (``Outage``).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

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
from geoproxy.state.scripts import Scripts
from geoproxy.state.store import Lease, QueueUnavailable, StickEntry, StickRequest, Ticket

ROOMY = 4  # a partial first-with-room list holds this many candidates believed to have room
LISTED = 16  # a least-loaded request lists at most this many candidates (rule 3)
FRESH = 0.05  # seconds: counts read this recently may decide a plain request (rule 2)
# A worker whose plain requests to a backend come less than this apart (seconds, on average)
# counts them without a call of their own (rule 2)
BEHIND_GAP = 0.001
# A plain call reads every count back, for backends of up to READ_EVERY_CALL servers; for
# larger ones (where reading them all costs Redis more than the rest of the call) when the last
# reading is older than REREAD, seconds: in between, the increments answer the counts they
# changed, and other workers' changes to other servers wait for the next reading.
READ_EVERY_CALL = 16
REREAD = 0.025
_FIRST = PickMode.FIRST_WITH_ROOM
_LEAST = PickMode.LEAST_LOADED


def ttl_ms(ttl: float | None) -> int:
    """A stick entry's lifetime for Redis: milliseconds, 0 for none."""
    return max(int(ttl * 1000), 1) if ttl else 0


def _plain_ranking(ranking: Ranking) -> bool:
    """Whether no candidate of ``ranking`` has maxconn (and so no queue either)."""
    return all(s.maxconn == 0 for s in ranking.candidates)


def _is_plain(wish: _Wish) -> bool:
    """Whether a request's choice needs no check against the fleet (rule 2)."""
    return wish.stick is None and _plain_ranking(wish.ranking)


class _Wish(NamedTuple):
    """What one request asks; ``whole``: send its whole ranking."""

    ranking: Ranking
    stick: StickRequest | None
    whole: bool


class _Answer(NamedTuple):
    """The server one request got, and the holder it was counted under."""

    server: str | None
    stuck: bool
    inflight: int  # the server's count in flight, fleet-wide, once this request counted
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
        # Redis's clock (ms) less this process's (ms), as of the last heartbeat
        self.redis_offset_ms: float | None = None
        outage.on_new_holder(self._forget_pending)

    # -- acquire ---------------------------------------------------------------------------

    def acquire(
        self, backend: str, ranking: Ranking, stick: StickRequest | None = None
    ) -> Lease | None:
        state = self._backends[backend]
        if self._outage.may_call():
            # (maxconn read from the view: the Runtime API may set it on any server)
            if stick is None and _plain_ranking(ranking) and state.group.in_worker():
                now = self._clock()
                busy = state.note_plain(now) < BEHIND_GAP
                if busy and now - state.counts_at <= FRESH:
                    return self._acquire_behind(state, ranking, now)
            job = state.group.submit(Job(_Wish(ranking, stick, False)))
            answer: _Answer | None = job.outcome
            if answer is not None and answer.resend:
                job = state.group.submit(Job(_Wish(ranking, stick, True)))
                answer = job.outcome
            if answer is not None and not answer.resend:
                return self._lease(state, answer)
        return self._acquire_locally(state, ranking)

    def send(self, state: BackendState, batch: list[Job]) -> None:
        """The group commit's call for ``batch`` (rule 1): plain commands when every request in
        it is plain and the connection allows (rule 2), else ``acquire.lua``."""
        wishes = [job.wish for job in batch if job.wish is not None]
        holder = self._outage.holder
        changes = state.take_pending()
        plain = (not wishes or self._clock() - state.counts_at <= FRESH) and all(
            map(_is_plain, wishes)
        )
        try:
            if plain:
                answers = self._send_plain(state, wishes, changes, holder)
            else:
                answers = self._send_scripted(state, wishes, changes, holder)
        except REDIS_ERRORS as error:
            state.give_back_pending(changes)
            state.counts_wanted = False  # (else the flusher would ask again at once, and again)
            self._outage.failed(error, counted=True)  # rule 4: the pending go with the holder
            for job in batch:
                job.failed = True
            return
        self._outage.answered()
        given = iter(answers)
        for job in batch:
            job.outcome = True if job.wish is None else next(given)

    def _send_plain(
        self,
        state: BackendState,
        wishes: Sequence[_Wish],
        changes: dict[str, int],
        holder: str,
    ) -> list[_Answer]:
        """Decide ``wishes`` here, then one MULTI/EXEC: the increments, and the counts read back
        (rule 2)."""
        counts = dict(state.fleet_inflight) if wishes else state.fleet_inflight
        delta = dict(changes)
        chosen: list[str | None] = []
        for wish in wishes:
            server = decide(wish.ranking, counts)
            if server is None:
                chosen.append(None)
                continue
            taken = server.name
            delta[taken] = delta.get(taken, 0) + 1
            counts[taken] = counts.get(taken, 0) + 1
            chosen.append(taken)
        keys = state.keys
        mine = keys.worker(holder)
        commands: list[tuple[Any, ...]] = []
        for name, by in delta.items():
            if by:
                commands.append(("HINCRBY", keys.inflight, name, by))
                commands.append(("HINCRBY", mine, name, by))
        now = self._clock()
        beat = self.redis_offset_ms is not None and now - self.beaten_at >= HEARTBEAT_PERIOD
        if beat:  # rule 5, on Redis's clock as the last heartbeat read it
            expiry = int(now * 1000 + (self.redis_offset_ms or 0)) + WORKER_TTL_MS
            commands.append(("ZADD", keys.workers, expiry, holder))
        read_all = len(state.config.servers) <= READ_EVERY_CALL or now - state.counts_at > REREAD
        if read_all:
            commands.append(("HGETALL", keys.inflight))
        replies = self._transaction(commands)
        if beat:
            self.beaten_at = now
        self._repair(state, commands, replies)
        if read_all:
            state.counts_wanted = False
            read = replies[-1]
            if isinstance(read, dict):  # redis-py's answer to HGETALL
                state.saw_counts({name: int(count) for name, count in read.items()})
            else:
                state.saw_counts({read[i]: int(read[i + 1]) for i in range(0, len(read), 2)})
            state.counts_at = now
        else:  # the increments answered the counts they changed
            for command, reply in zip(commands, replies, strict=True):
                if command[1] == keys.inflight:
                    state.saw_count(command[2], int(reply))
        counts = state.fleet_inflight
        return [
            _Answer(taken, False, counts.get(taken, 0) if taken else 0, False, holder)
            for taken in chosen
        ]

    def _transaction(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` in one MULTI/EXEC, one round trip: on raw sockets when the URL allows,
        else through redis-py (Sentinel, Cluster: every key has the backend's hash tag)."""
        if self._fast is not None:
            return self._fast.transaction(commands)
        pipe: Any = self._client.pipeline(transaction=True)  # redis-py leaves it untyped
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = pipe.execute()
        return replies

    def _repair(
        self, state: BackendState, commands: list[tuple[Any, ...]], replies: list[Any]
    ) -> None:
        """A worker's hash below zero: put the over-release back, count under a new holder
        (rule 4)."""
        mine = state.keys.worker(self._outage.holder)
        fixes = []
        for command, reply in zip(commands, replies, strict=True):
            if command[1] == mine and int(reply) < 0:
                fixes.append((command[2], -int(reply)))
        if not fixes:
            return
        keys = state.keys
        repair: list[tuple[Any, ...]] = []
        for name, over in fixes:
            repair.append(("HINCRBY", keys.inflight, name, over))
            repair.append(("HDEL", mine, name))
        self._transaction(repair)
        self._outage.renew_holder()

    def _send_scripted(
        self,
        state: BackendState,
        wishes: Sequence[_Wish],
        changes: dict[str, int],
        holder: str,
    ) -> list[_Answer]:
        keys_of = state.keys
        keys = [
            keys_of.inflight,
            keys_of.worker(holder),
            keys_of.workers,
            keys_of.queue_deadlines,
            keys_of.queue,
        ]
        now = self._clock()
        beat = now - self.beaten_at >= HEARTBEAT_PERIOD
        args: list[Any] = [
            holder,
            WORKER_TTL_MS if beat else 0,
            keys_of.queue_prefix if state.has_queues else "",
            len(changes),
        ]
        for name, by in changes.items():
            args += (name, -by)  # the script takes releases: a request counted here is -1
        args.append(len(wishes))
        counts = state.fleet_inflight
        # counts too old to decide plain requests here (rule 2): the first least-loaded request
        # lists its whole ranking, so that the script answers every count a decision reads
        reread, whole = now - state.counts_at > FRESH, False
        for wish in wishes:
            if reread and not whole and wish.ranking.mode is _LEAST:
                wish, whole = wish._replace(whole=True), True
            self._encode(wish, counts, keys, args)
        reply = self._scripts.call(self._client, "acquire", keys, args, self._fast)
        if beat:
            self.beaten_at = now
        answers = []
        for at in range(0, 4 * len(wishes), 4):
            server, stuck, count, resend = reply[at : at + 4]
            answers.append(_Answer(server or None, bool(stuck), int(count), bool(resend), holder))
        seen = reply[4 * len(wishes) :]
        for at in range(0, len(seen), 2):
            state.saw_count(seen[at], int(seen[at + 1]))
        if whole or len(seen) == 2 * len(state.config.servers):
            state.counts_at = now  # the script read every count (a whole ranking: the usable ones)
        return answers

    @staticmethod
    def _encode(wish: _Wish, counts: dict[str, int], keys: list[str], args: list[Any]) -> None:
        """One request's part of ``acquire.lua``'s arguments (rule 3), and its stick keys."""
        ranking = wish.ranking
        stick = wish.stick
        candidates = ranking.candidates
        partial = False
        if not wish.whole:
            if ranking.mode is _FIRST:
                end = _partial_end(candidates, counts)
                partial, candidates = end < len(candidates), candidates[:end]
            elif len(candidates) > LISTED:
                partial, candidates = True, _least_loaded(candidates, counts)
        header = ("F" if ranking.mode is _FIRST else "L") + ("~" if partial else "")
        args += (header + ("" if stick is None else "+"), len(candidates))
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
        state.saw_count(name, answer.inflight)
        local = state.local_inflight
        local[name] = local.get(name, 0) + 1
        state.tally.saw_acquire(name, answer.inflight, state.fleet_total)
        return Lease(state.config.name, name, True, answer.stuck, answer.holder)

    def _acquire_behind(self, state: BackendState, ranking: Ranking, now: float) -> Lease | None:
        """Decide a plain request here and count it with the backend's next call (rule 2)."""
        if now - state.counts_at > REREAD:
            state.want_counts(now)  # the next call reads them all, changes to carry or none
        chosen = decide(ranking, state.fleet_inflight)
        if chosen is None:
            return None
        name = chosen.name
        state.change_pending(name, 1, now)
        local = state.local_inflight
        local[name] = local.get(name, 0) + 1
        state.tally.saw_acquire(name, state.fleet_inflight[name], state.fleet_total)
        self._wake_flusher(False)
        return Lease(state.config.name, name, True, False, self._outage.holder)

    def _acquire_locally(self, state: BackendState, ranking: Ranking) -> Lease | None:
        local = state.local_inflight
        chosen = decide(ranking, local)
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
        script_keys += [keys.queue_deadlines, keys.queue_sequence]
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
        state.change_pending(lease.server, -1, self._clock())
        # Someone waits in a queue, or this process has nothing else in flight in this backend
        # (no acquire will come soon to carry it): give the slot back at once, so that other
        # workers' leastconn sees the true count.
        now = (state.contended_until and self._clock() < state.contended_until) or not any(
            local.values()
        )
        self._wake_flusher(bool(now))

    def flush_pending(self, state: BackendState) -> None:
        """Send ``state``'s pending changes in a call of their own (the flusher's)."""
        if state.pending or state.counts_wanted:
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


def _partial_end(candidates: tuple[ServerView, ...], counts: dict[str, int]) -> int:
    """How many of a first-with-room ranking to send (rule 3): up to the first without maxconn
    (it always has room), or to the ``ROOMY``-th that ``counts`` say has room."""
    roomy = 0
    for position, server in enumerate(candidates):
        if server.maxconn == 0:
            return position + 1
        if counts.get(server.name, 0) < server.maxconn:
            roomy += 1
            if roomy == ROOMY:
                return position + 1
    return len(candidates)


def _least_loaded(
    candidates: tuple[ServerView, ...], counts: dict[str, int]
) -> tuple[ServerView, ...]:
    """The ``LISTED`` least loaded of ``candidates`` by ``counts``, in ranking order."""
    order = {server.name: i for i, server in enumerate(candidates)}
    best = heapq.nsmallest(
        LISTED,
        candidates,
        key=lambda s: ((counts.get(s.name, 0) + 1) / s.weight if s.weight else float("inf"),
                       order[s.name]),
    )
    return tuple(sorted(best, key=lambda s: order[s.name]))
