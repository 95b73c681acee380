"""Turning what Redis holds about a backend into the ``BackendView`` the request path reads.

Pure (no Redis here): ``state/redis_store.py`` fetches the fields, this module interprets them.
Effective weight follows HAProxy: the operator's weight (``weight`` field, else the configured
one), ramped up over ``slowstart`` after the server came back UP (at least 1). A server whose
address comes from run-time resolution (``resolved`` field, written by ``geoproxy.resolve``)
routes to that address, and is in MAINT while it has none (HAProxy's "MAINT (resolution)").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from geoproxy.balance.view import AdminState, BackendView, OperState, ServerView
from geoproxy.config.model import Backend

STATE_FIELDS = ("admin", "oper", "weight", "up_since", "resolved", "nolb", "maxconn",
                "shutdowns")


def initial_view(backend: Backend) -> BackendView:
    return BackendView(
        name=backend.name,
        servers=tuple(
            ServerView(
                name=server.name,
                index=index,
                weight=server.weight,
                backup=server.backup,
                admin=AdminState.MAINT if server.disabled else AdminState.READY,
                oper=OperState.UP,
                maxconn=server.maxconn,
                maxqueue=server.maxqueue,
                cookie=server.cookie,
            )
            for index, server in enumerate(backend.servers)
        ),
    )


def effective_weight(weight: int, slowstart: float, up_since_ms: int, now_ms: int) -> int:
    """``weight`` scaled by how far into ``slowstart`` a returning server is."""
    if slowstart <= 0 or up_since_ms <= 0 or weight == 0:
        return weight
    elapsed = (now_ms - up_since_ms) / 1000
    if elapsed >= slowstart:
        return weight
    return max(1, math.ceil(weight * max(elapsed, 0) / slowstart))


def rebuild_view(
    backend: Backend,
    previous: BackendView,
    fields: Sequence[Sequence[str | None]],
    counts: dict[str, int],
    queued: dict[str, int],
    now_ms: int,
) -> BackendView:
    """The backend's view from the server hashes' ``STATE_FIELDS`` (in configuration order),
    the fleet-wide in-flight and queued counts, at Redis time ``now_ms``."""
    servers = []
    for view, server, (admin, oper, weight, up_since, resolved, nolb, maxconn, shutdowns) in zip(
        previous.servers, backend.servers, fields, strict=True
    ):
        base = int(weight) if weight is not None else server.weight
        if nolb == "1":
            base = 0  # http-check disable-on-404 saw a 404: persistent users only (NOLB)
        if resolved == "":
            admin = AdminState.MAINT.value  # no address: MAINT (resolution)
        servers.append(
            dataclasses.replace(
                view,
                address=resolved,
                admin=AdminState(admin) if admin else view.admin,
                oper=OperState(oper) if oper else view.oper,
                weight=effective_weight(base, server.slowstart, int(up_since or 0), now_ms),
                inflight=counts.get(view.name, 0),
                queued=queued.get(view.name, 0),
                # the Runtime API's 'set maxconn server' changes the hash's value fleet-wide
                maxconn=int(maxconn) if maxconn is not None else view.maxconn,
                shutdowns=int(shutdowns or 0),
            )
        )
    return BackendView(previous.name, tuple(servers))


def shutdown_requests(before: BackendView, after: BackendView) -> list[str]:
    """Servers whose sessions an operator asked to shut down since ``before`` was read (a
    view never read from the shared state asks nothing)."""
    return [
        new.name
        for old, new in zip(before.servers, after.servers, strict=True)
        if 0 <= old.shutdowns < new.shutdowns
    ]


def transitions(before: BackendView, after: BackendView) -> list[tuple[str, OperState, OperState]]:
    """Servers whose health state changed between two views: (name, before, after)."""
    return [
        (old.name, old.oper, new.oper)
        for old, new in zip(before.servers, after.servers, strict=True)
        if old.oper is not new.oper
    ]
