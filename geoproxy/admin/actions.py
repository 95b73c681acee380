"""Admin actions posted from the stats page, as HAProxy's page posts them.

Rules:
1. The form's fields are HAProxy's: ``b`` the backend (its name, or ``#IID`` as HAProxy's own
   page sends it), ``s`` the servers (repeatable), ``action``. geoproxy adds the ``weight``
   action with a ``weight`` field (0-256, or ``N%`` of the configured weight).
2. The answer is HAProxy's ``;st=`` code: DONE (every server changed), PART (some), NONE (no
   server named), ERRP (unknown action or backend, no server changed, or a bad weight).
3. Changes go to Redis through a ``FleetControl``: every worker of every host applies them at
   its next snapshot refresh (within a second).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from geoproxy.balance.view import AdminState
from geoproxy.state.store import FleetReport


class Outcome(enum.Enum):
    DONE = "DONE"
    PART = "PART"
    NONE = "NONE"
    ERRP = "ERRP"
    DENY = "DENY"


class FleetControl(Protocol):
    """What the stats page reads and changes in the fleet's shared state."""

    def fleet_report(self) -> FleetReport: ...

    def set_admin(self, backend: str, server: str, state: AdminState) -> None: ...

    def set_weight(self, backend: str, server: str, weight: int) -> None: ...


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """One posted form: ``backend`` as sent (``b``), ``servers`` (``s``), ``action``,
    ``weight`` (the geoproxy field, "" when absent)."""

    backend: str
    servers: tuple[str, ...]
    action: str
    weight: str = ""


def _backend_name(requested: str, backends: Sequence[str]) -> str | None:
    """The backend a form names: ``#IID`` is its position in the page (1-based)."""
    if requested.startswith("#") and requested[1:].isdigit():
        index = int(requested[1:]) - 1
        return backends[index] if 0 <= index < len(backends) else None
    return requested if requested in backends else None


def _weight(text: str, configured: int) -> int | None:
    text = text.strip()
    if text.endswith("%") and text[:-1].isdigit():
        return round(configured * int(text[:-1]) / 100)
    if text.isdigit() and int(text) <= 256:
        return int(text)
    return None


def apply(request: AdminRequest, control: FleetControl, order: Sequence[str]) -> Outcome:
    """Apply one posted action; ``order`` is the page's proxy names (for ``#IID``)."""
    if not request.servers:
        return Outcome.NONE
    state = {"ready": AdminState.READY, "drain": AdminState.DRAIN,
             "maint": AdminState.MAINT}.get(request.action)
    if state is None and request.action != "weight":
        return Outcome.ERRP
    report = control.fleet_report()
    name = _backend_name(request.backend, order or [b.name for b in report.backends])
    backend = next((b for b in report.backends if b.name == name), None)
    if backend is None:
        return Outcome.ERRP
    known = {server.name: server for server in backend.servers}
    done = 0
    for server in dict.fromkeys(request.servers):
        found = known.get(server)
        if found is None:
            continue
        if state is not None:
            control.set_admin(backend.name, server, state)
        else:
            weight = _weight(request.weight, found.cfg_weight)
            if weight is None:
                return Outcome.ERRP if not done else Outcome.PART
            control.set_weight(backend.name, server, weight)
        done += 1
    if done == 0:
        return Outcome.ERRP
    return Outcome.DONE if done == len(set(request.servers)) else Outcome.PART
