"""Group commit: the acquires a worker makes on one backend while a call is out go as one call.

A database commits the transactions that arrived during the previous disk write with one write;
here the requests that want a server of the same backend while a script call is out (or within
the hub's current turn, when none is) leave together as one ``acquire.lua`` call. Under load the
batch grows by itself and each request's share of Redis's work shrinks; idle, a request goes
alone, one hub turn later.

Rules:
1. At most one call per backend per process is out at a time. The greenlet that finds none out
   leads: it yields one turn of the hub (so that the requests woken by the same poll join it),
   or, when the worker is busy (its previous call left less than ``BUSY`` ago), ``WINDOW``:
   what the worker gains in round trips it saves (about four times fewer under load) is worth
   more than a third of a millisecond; idle, a request waits for nobody. Then it takes every
   job queued and sends them. Everyone else waits on its own ``Waiter``.
2. When the leader's call returns, it wakes every job of its batch (each job holds its own
   outcome), and hands the lead to the first job queued meanwhile, which sends at once.
3. Waking happens through hub callbacks: only the hub may switch into a waiting greenlet. A job
   whose greenlet died while it waited is dropped from the queue; if it was handed the lead it
   passes the lead on.
4. ``send`` sets every job's outcome; when it raises, the jobs it did not settle are marked
   ``failed`` (the caller decides locally, as when Redis is away).
5. Outside a gevent worker (``watchdog.active()`` false: the master, tools, threads in tests)
   there is no hub turn to share: each job is sent alone, at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from geoproxy import watchdog

WINDOW: Final = 0.0003  # seconds a busy worker's leader collects requests for one call
BUSY: Final = 0.002  # a worker whose previous call left less than this ago is busy, seconds

_DONE = object()
_LEAD = object()


class Job:
    """One request's wish, and its outcome once sent. ``outcome`` is whatever ``send`` sets;
    ``failed`` is true when the call that carried it failed."""

    __slots__ = ("wish", "outcome", "failed", "_waiter", "_leads")

    def __init__(self, wish: Any) -> None:
        self.wish = wish
        self.outcome: Any = None
        self.failed = False
        self._waiter: Any = None
        self._leads = False


Send = Callable[[list[Job]], None]


class GroupCommit:
    """The batching of one backend's calls in one process."""

    __slots__ = ("_send", "_queue", "_busy", "_hub", "_sleep", "_waiter_type", "_sent_at")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: list[Job] = []
        self._busy = False
        self._hub: Any = None
        self._sent_at = float("-inf")  # when the last call left (monotonic seconds)

    def submit(self, job: Job) -> Job:
        """Send ``job`` (with whatever else is queued by then) and return it, settled."""
        if self._hub is None and not self._in_worker():
            self._send_batch([job])
            return job
        self._queue.append(job)
        if self._busy:
            if self._wait(job) is _DONE:
                return job
        else:
            self._busy = True
            job._leads = True
            try:
                # rule 1: the rest of this turn of the hub joins, or of the window when busy
                now = time.monotonic()
                self._sleep(WINDOW if now - self._sent_at < BUSY else 0)
            except BaseException:
                self._leave(job)
                raise
        job._leads = False
        self._sent_at = time.monotonic()
        batch, self._queue = self._queue, []
        try:
            self._send_batch(batch)
        finally:
            run = self._hub.loop.run_callback
            for other in batch:
                if other is not job and other._waiter is not None:
                    run(other._waiter.switch, _DONE)
            self._pass_lead()
        return job

    def in_worker(self) -> bool:
        """Whether calls are batched (rule 5): this is a gevent worker."""
        return self._hub is not None or self._in_worker()

    def _in_worker(self) -> bool:
        """Whether this is a gevent worker (rule 5); asked until it is, since the app is built
        before the worker starts its watchdog."""
        if watchdog.active() is None:
            return False
        import gevent
        from gevent.hub import Waiter

        self._hub = gevent.get_hub()
        self._sleep = gevent.sleep
        self._waiter_type = Waiter
        return True

    def _send_batch(self, batch: list[Job]) -> None:
        try:
            self._send(batch)
        except BaseException:
            for job in batch:
                if job.outcome is None:
                    job.failed = True
            raise

    def _wait(self, job: Job) -> object:
        waiter = job._waiter = self._waiter_type(self._hub)
        try:
            token: object = waiter.get()
        except BaseException:
            self._leave(job)
            raise
        return token

    def _leave(self, job: Job) -> None:
        """``job``'s greenlet gives up (rule 3)."""
        if job in self._queue:
            self._queue.remove(job)
        job._waiter = None
        if job._leads:
            job._leads = False
            self._pass_lead()

    def _pass_lead(self) -> None:
        if self._queue:
            first = self._queue[0]
            first._leads = True
            waiter = first._waiter
            if waiter is not None:
                self._hub.loop.run_callback(waiter.switch, _LEAD)
        else:
            self._busy = False
