"""Waiting for a slot when every candidate server is at its ``maxconn``, as HAProxy's queues do:
in arrival order across the whole fleet, until ``timeout queue`` (then 503).

Rules:
1. A waiting request holds a ticket in Redis and asks again after a short, growing pause
   (2 ms doubling up to 20 ms); the queue script serves tickets in arrival order as slots free.
2. A request that gives up (deadline passed, Redis away) takes its ticket out, so it blocks
   nobody; a ticket whose waiter died is purged by its deadline.
3. With ``option abortonclose`` (in its frontend and its backend, as HAProxy 2.6 needs) a
   request whose client closed its side while it waits (``CLIENT_CLOSED``, the worker's probe
   in the environ) takes its ticket out and is not sent (HAProxy's termination state CQ);
   without it, it waits on and is sent, as in HAProxy.
4. HAProxy's default for ``timeout queue`` is ``timeout connect``; with neither set, geoproxy
   waits at most ``DEFAULT_QUEUE_TIMEOUT`` rather than forever.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable

from geoproxy.balance.policy import Ranking
from geoproxy.config.model import Backend
from geoproxy.state.store import FleetState, Lease, QueueUnavailable, Ticket

# the environ's probe: a callable that says whether the client closed its side (the worker
# offers it for plain HTTP/1.1 connections)
CLIENT_CLOSED = "geoproxy.client_closed"
DEFAULT_QUEUE_TIMEOUT = 30.0
FIRST_PAUSE, MAX_PAUSE = 0.002, 0.02


class QueueOutcome(enum.Enum):
    TIMED_OUT = "timed out"  # 503, HAProxy's termination state sQ
    FULL = "full"  # the server's queue reached maxqueue: balance the request instead
    ABORTED = "aborted"  # the client closed while queued (abortonclose): CQ, nothing sent


def queue_timeout(backend: Backend) -> float:
    timeouts = backend.timeouts
    return timeouts.queue or timeouts.connect or DEFAULT_QUEUE_TIMEOUT


def wait_in_queue(
    fleet: FleetState,
    backend: Backend,
    ranking: Ranking,
    server: str | None = None,
    *,
    abandoned: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease | QueueOutcome:
    """Queue for a slot among ``ranking``'s candidates (``server``: the server queue of a
    persistent request, bounded by that server's ``maxqueue``); ``abandoned``: says whether
    the client left (rule 3)."""
    timeout = queue_timeout(backend)
    maxqueue = 0
    if server is not None:
        configured = backend.server(server)
        maxqueue = configured.maxqueue if configured else 0
    ticket = Ticket(secrets.token_hex(8), int(timeout * 1000), server, maxqueue)
    deadline = clock() + timeout
    pause = FIRST_PAUSE
    outcome = QueueOutcome.TIMED_OUT
    try:
        while True:
            answer = fleet.queue_acquire(backend.name, ranking, ticket)
            if isinstance(answer, Lease):
                return answer
            if answer is None:
                return QueueOutcome.FULL
            if abandoned is not None and abandoned():
                outcome = QueueOutcome.ABORTED
                break
            left = deadline - clock()
            if left <= 0:
                break
            sleep(min(pause, left))
            pause = min(pause * 2, MAX_PAUSE)
    except QueueUnavailable:
        return QueueOutcome.TIMED_OUT
    try:
        fleet.leave_queue(backend.name, ticket)
    except QueueUnavailable:
        pass  # its deadline purges it
    return outcome
