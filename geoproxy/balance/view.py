"""A snapshot of one backend's servers, as the pure layers (policies, persistence) see it.

Rules:
1. A view is plain, frozen data: the fleet state layer builds it from Redis (or from its local
   copy while Redis is away); policies and persistence only read it.
2. Admin state (operator: READY, DRAIN, MAINT) and operational state (health checks: UP, DOWN)
   are separate, as in HAProxy (``srv->cur_admin`` vs ``srv->cur_state``).
3. ``weight`` is the effective weight: configured, or set by an operator, scaled by slowstart.
   A server in DRAIN, or with weight 0, takes no new users but keeps its persistent ones.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AdminState(enum.Enum):
    READY = "ready"
    DRAIN = "drain"
    MAINT = "maint"


class OperState(enum.Enum):
    """Health as HAProxy shows it. GOING_DOWN still serves (failing checks, not yet ``fall``);
    GOING_UP does not (passing checks, not yet ``rise``). STOPPING (HAProxy's NOLB, set by the
    Runtime API's ``set server B/S health stopping``) keeps its persistent users only."""

    UP = "up"
    GOING_DOWN = "going-down"
    DOWN = "down"
    GOING_UP = "going-up"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class ServerView:
    """One server at one moment. ``inflight`` and ``queued`` are fleet-wide counts as last seen;
    ``maxconn``/``maxqueue`` of 0 mean "no limit". ``index`` is the configuration order."""

    name: str
    index: int
    weight: int
    backup: bool = False
    admin: AdminState = AdminState.READY
    oper: OperState = OperState.UP
    inflight: int = 0
    queued: int = 0
    maxconn: int = 0
    maxqueue: int = 0
    cookie: str | None = None
    # the address run-time resolution gave (``resolvers``), '' while it gives none (the server
    # is then in MAINT); None: the configured address stands
    address: str | None = None
    # how many times an operator asked to shut this server's sessions down (the Runtime API's
    # ``shutdown sessions server``); -1 until read from the shared state
    shutdowns: int = -1

    @property
    def is_running(self) -> bool:
        """Health allows traffic (UP, failing but not yet down, or STOPPING)."""
        return self.oper is not OperState.DOWN and self.oper is not OperState.GOING_UP

    @property
    def is_usable(self) -> bool:
        """May take a new, non-persistent request: UP or going down, READY, weight above 0."""
        return (
            (self.oper is OperState.UP or self.oper is OperState.GOING_DOWN)
            and self.admin is AdminState.READY
            and self.weight > 0
        )

    @property
    def accepts_persistent(self) -> bool:
        """May take a request that persistence sends to it: running and not in MAINT
        (DRAIN keeps its users, as in HAProxy)."""
        return self.is_running and self.admin is not AdminState.MAINT

    @property
    def has_room(self) -> bool:
        return self.maxconn == 0 or self.inflight < self.maxconn


@dataclass(frozen=True, slots=True)
class BackendView:
    """Every server of one backend, in configuration order."""

    name: str
    servers: tuple[ServerView, ...]

    def server(self, name: str) -> ServerView | None:
        for server in self.servers:
            if server.name == name:
                return server
        return None
