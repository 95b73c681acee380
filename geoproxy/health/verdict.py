"""HAProxy's health counter, pure: what one check result does to a server's health.

Rules (HAProxy's ``check->health``, src/check.c):
1. Health is one counter from 0 to ``rise + fall - 1``. A server is running while
   ``health >= rise``: UP at the top, GOING_DOWN below it; stopped below ``rise``: DOWN at 0,
   GOING_UP above it.
2. A success adds one (up to the top); reaching ``rise`` from below makes the server UP, and a
   running server's success puts it back at the top at once (one success cancels a going-down).
3. A failure takes one away; below ``rise`` the counter drops to 0 (DOWN) at once, so ``fall``
   consecutive failures take an UP server down, one failure sends a GOING_UP server back to 0,
   and ``rise`` consecutive successes bring a DOWN one up.
4. The next check comes after ``inter`` while UP, ``fastinter`` while changing (GOING_UP or
   GOING_DOWN), ``downinter`` while DOWN; unset ones fall back to ``inter``.
5. Passive observation (``on-error``) acts on the same counter: ``fail-check`` counts as one
   failed check, ``sudden-death`` leaves one failure before DOWN, ``mark-down`` is DOWN at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoproxy.balance.view import OperState
from geoproxy.config.model import OnError, Server


@dataclass(frozen=True, slots=True)
class Health:
    """A server's health counter and what it means."""

    value: int
    rise: int
    fall: int

    @property
    def top(self) -> int:
        return self.rise + self.fall - 1

    @property
    def state(self) -> OperState:
        if self.value >= self.rise:
            return OperState.UP if self.value == self.top else OperState.GOING_DOWN
        return OperState.DOWN if self.value == 0 else OperState.GOING_UP

    @property
    def is_running(self) -> bool:
        return self.value >= self.rise


def initial_health(server: Server) -> Health:
    """A server starts UP, as HAProxy starts it (unless a state file says otherwise)."""
    return Health(server.rise + server.fall - 1, server.rise, server.fall)


def after_check(health: Health, passed: bool) -> Health:
    """The counter after one active check result (rules 2 and 3)."""
    if passed:
        value = health.top if health.is_running else health.value + 1
        if value >= health.rise:
            value = health.top
        return Health(value, health.rise, health.fall)
    if health.value == 0:
        return health
    value = health.value - 1
    if value < health.rise:
        value = 0
    return Health(value, health.rise, health.fall)


def after_error_limit(health: Health, action: OnError) -> Health:
    """The counter after passive observation reached ``error-limit`` (rule 5)."""
    if action is OnError.MARK_DOWN:
        return Health(0, health.rise, health.fall)
    if action is OnError.SUDDEN_DEATH:
        if health.is_running:
            return Health(health.rise, health.rise, health.fall)
        return health
    if action is OnError.FAIL_CHECK:
        return after_check(health, passed=False)
    return health  # FASTINTER changes only when the next check runs


def next_interval(server: Server, state: OperState) -> float:
    """Seconds until the next check (rule 4)."""
    if state is OperState.UP:
        return server.inter
    if state is OperState.DOWN:
        return server.downinter or server.inter
    return server.fastinter or server.inter
