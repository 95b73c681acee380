"""What a Runtime API command works with: the session's level, the fleet's shared state (a
``RuntimeControl``), this host's configuration and facts. Pure: no I/O here."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from geoproxy.balance.view import AdminState
from geoproxy.config.model import Config
from geoproxy.state.store import FleetReport


class Level(enum.IntEnum):
    """HAProxy's CLI access levels (``level`` on ``stats socket``)."""

    USER = 1
    OPERATOR = 2
    ADMIN = 3


class CommandError(Exception):
    """A command's refusal: ``answer`` is HAProxy's text, without the final newline (some of
    HAProxy's own error texts have none: ``newline=False`` keeps them so)."""

    def __init__(self, answer: str, newline: bool = True) -> None:
        super().__init__(answer)
        self.answer = answer + ("\n" if newline else "")


PERMISSION_DENIED = "Permission denied"


class StickRowLike(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def expire_ms(self) -> int | None: ...

    @property
    def data(self) -> dict[str, str]: ...


class RuntimeControl(Protocol):
    """The fleet's shared state as the Runtime API reads and changes it
    (``geoproxy.state.runtime_ops.RuntimeOps`` on Redis). ``KeyError``: no such server."""

    def fleet_report(self) -> FleetReport: ...

    def set_admin(self, backend: str, server: str, state: AdminState) -> None: ...

    def set_weight(self, backend: str, server: str, weight: int) -> None: ...

    def set_health(self, backend: str, server: str, health: str) -> None: ...

    def set_maxconn(self, backend: str, server: str, maxconn: int) -> None: ...

    def shutdown_sessions(self, backend: str, server: str) -> None: ...

    def disable_frontend(self, frontend: str) -> bool:
        """Fleet-wide; False when it was disabled already."""
        ...

    def enable_frontend(self, frontend: str) -> bool:
        """Fleet-wide; False when it was not disabled."""
        ...

    def stick_rows(self, table: str, key: str | None = None) -> Sequence[StickRowLike]: ...

    def stick_clear(self, table: str, key: str | None = None) -> int: ...

    def stick_set(self, table: str, key: str, server: str, expire_ms: int | None) -> None: ...


@dataclass(frozen=True, slots=True)
class HostInfo:
    """This host's facts for ``show info``: the master's pid and start time (epoch seconds),
    its worker count, node name, file descriptor limit."""

    pid: int
    started: float
    workers: int
    node: str
    ulimit_n: int


@dataclass(slots=True)
class Context:
    """One command's world; ``level`` is the session's current level."""

    control: RuntimeControl
    config: Callable[[], Config]
    host: HostInfo
    clock: Callable[[], float]
    level: Level = Level.OPERATOR

    def require(self, level: Level) -> None:
        if self.level < level:
            raise CommandError(PERMISSION_DENIED)
