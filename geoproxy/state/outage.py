"""What a process does while Redis is away, and the name it counts under (DESIGN.md invariant 4).

Rules:
1. After a failed call the request path leaves Redis alone for ``RETRY_AFTER`` and decides from
   local counts; the first call that answers again ends the outage. The outage and the recovery
   are each logged once.
2. A call that counts requests in flight (acquire, queue) and fails may still have run: a
   stalled Redis runs it once it wakes, after the process gave up on it. After such a failure
   the process counts under a new *holder* id (``worker_id#N``) and never writes under the old
   one again: the old hash, phantom counts included, is reaped with the old id's expiry, and a
   lease taken under an old holder is given back by that reaper, never released. The fleet's
   counts converge to the truth without knowing which calls ran.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

RETRY_AFTER = 1.0  # after a failure, the request path leaves Redis alone this long, seconds


class Outage:
    """One process's view of whether Redis answers, and its holder id (rules 1 and 2)."""

    __slots__ = ("worker_id", "holder", "_generation", "_down_until", "_degraded", "_log",
                 "_clock", "_on_new_holder")

    def __init__(
        self,
        worker_id: str,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id = worker_id
        self.holder = worker_id
        self._generation = 0
        self._down_until = 0.0
        self._degraded = False
        self._log = log
        self._clock = clock
        self._on_new_holder: list[Callable[[str], None]] = []

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and decisions are local."""
        return self._degraded

    def may_call(self) -> bool:
        """Whether the request path may try Redis now (rule 1)."""
        return self._clock() >= self._down_until

    def on_new_holder(self, listener: Callable[[str], None]) -> None:
        self._on_new_holder.append(listener)

    def renew_holder(self) -> None:
        """Count under a new holder id from now on (rule 2)."""
        self._generation += 1
        self.holder = f"{self.worker_id}#{self._generation}"
        for listener in self._on_new_holder:
            listener(self.holder)

    def failed(self, error: Exception, *, counted: bool = False) -> None:
        """A call failed; ``counted``: it may have counted requests in flight (rule 2)."""
        if counted:
            self.renew_holder()
        self._down_until = self._clock() + RETRY_AFTER
        if not self._degraded:
            self._degraded = True
            self._log.error(
                "Redis unreachable (%s): routing from the local snapshot and local counts", error
            )

    def answered(self) -> None:
        """A call answered: the request path need not wait out ``RETRY_AFTER``."""
        self._down_until = 0.0
        if self._degraded:
            self._degraded = False
            self._log.warning("Redis reachable again: routing with fleet-wide state")
