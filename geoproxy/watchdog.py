"""Coarse timeouts for the request path: one sweeping greenlet instead of a timer per wait.

gevent arms a timer for every wait on a socket that has a timeout (a ``Timeout`` exception
object, a libev timer started, stopped and closed): three or four per proxied request, about a
tenth of a worker's CPU. In a worker, sockets on the request path have no timeout; a ``Guard``
records a deadline before each blocking call, and the watchdog, waking every ``PERIOD``, throws
``TimeoutError`` into a greenlet whose guarded call has outlived its deadline.

Rules:
1. A guarded call raises ``TimeoutError`` (as a socket timeout would) no earlier than its timeout
   and at most ``PERIOD`` later, plus the hub's scheduling delay.
2. A guard serves one blocking call at a time of one greenlet: ``arm`` before it, ``disarm``
   after (in a ``finally``). The throw happens in a hub callback, when no other greenlet runs,
   and only if the same call (same serial number) is still waiting: a call that returned in the
   meantime is never interrupted, nor is whatever its greenlet does next.
3. Only a process that ``start``ed the watchdog (a gevent worker) uses it: elsewhere
   (the master, tools, tests of the forwarder on plain sockets) ``active()`` is false and callers
   keep socket timeouts.
"""

from __future__ import annotations

import time
from typing import Any, Final

PERIOD: Final = 0.02  # seconds between two sweeps

_monotonic = time.monotonic
_watchdog: Watchdog | None = None


class Guard:
    """The deadline of one blocking call at a time (rule 2)."""

    __slots__ = ("deadline", "waiter", "serial", "listed", "_armed", "_getcurrent")

    def __init__(self, watchdog: Watchdog) -> None:
        self.deadline = 0.0
        self.waiter: Any = None
        self.serial = 0
        self.listed = False
        self._armed = watchdog.armed
        self._getcurrent = watchdog.getcurrent

    def arm(self, timeout: float | None) -> None:
        """Guard the call about to be made; ``None``: no limit."""
        if timeout is None:
            return
        self.deadline = _monotonic() + timeout
        self.waiter = self._getcurrent()
        self.serial += 1
        if not self.listed:
            self.listed = True
            self._armed.append(self)

    def disarm(self) -> None:
        self.waiter = None


class Watchdog:
    """The sweeping greenlet of one worker process."""

    def __init__(self, period: float = PERIOD) -> None:
        from gevent import get_hub, getcurrent

        self.period = period
        self.armed: list[Guard] = []
        self.getcurrent = getcurrent
        self._hub = get_hub()
        self._greenlet: Any = None

    def start(self) -> None:
        import gevent

        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _run(self) -> None:
        import gevent

        while True:
            gevent.sleep(self.period)
            self.sweep()

    def sweep(self) -> None:
        """Schedule the throw for every guarded call past its deadline; forget disarmed guards."""
        now = _monotonic()
        still: list[Guard] = []
        run_callback = self._hub.loop.run_callback
        for guard in self.armed:
            waiter = guard.waiter
            if waiter is None:
                guard.listed = False
                continue
            if guard.deadline <= now:
                run_callback(_expire, guard, waiter, guard.serial)
                guard.deadline = float("inf")
            still.append(guard)
        self.armed[:] = still


def _expire(guard: Guard, waiter: Any, serial: int) -> None:
    if guard.waiter is waiter and guard.serial == serial and not waiter.dead:
        guard.waiter = None
        waiter.throw(TimeoutError("timed out"))


def start() -> Watchdog:
    """Start this process's watchdog (in a gevent worker, after monkey-patching)."""
    global _watchdog
    if _watchdog is None:
        _watchdog = Watchdog()
        _watchdog.start()
    return _watchdog


def active() -> Watchdog | None:
    """This process's running watchdog, or None (rule 3)."""
    return _watchdog


def new_guard() -> Guard | None:
    """A guard on this process's watchdog, or None when there is none (rule 3)."""
    return Guard(_watchdog) if _watchdog is not None else None
