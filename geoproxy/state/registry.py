"""Describing the configured backends in Redis: what ``geoproxy state``, the stats page and
every worker's snapshot read.

Rules:
1. The master registers the configuration once per start and per reload; a worker registers it
   only when the configuration was loaded while Redis was away, or when Redis came back empty
   (a restart without persistence), with the fleet's last known admin and health state.
2. Admin state, health and weight are only set where absent: operators' and checkers' values
   survive restarts and reloads.
3. A backend is registered when it is a member of ``gp:backends`` (a proxy without servers,
   such as a stats-only ``listen``, has no other key, and is registered all the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from geoproxy.balance.view import BackendView
from geoproxy.config.model import Backend
from geoproxy.state.connect import Client
from geoproxy.state.keys import (
    BACKENDS,
    HASHTABLE_PAD,
    PAD_ABOVE,
    BackendKeys,
    backend_keys,
)
from geoproxy.state.snapshot import initial_view


def register(client: Client, backends: Sequence[Backend]) -> None:
    """Describe ``backends`` as configured (rule 2), and forget servers no longer configured."""
    for backend in backends:
        pipe = client.pipeline(transaction=False)
        write_backend(pipe, backend, initial_view(backend))
        pipe.execute()
        _forget_removed_servers(client, backend_keys(backend.name), backend)


def restore(client: Client, backend: Backend, view: BackendView) -> None:
    """Describe ``backend`` again after Redis lost it, with ``view``'s admin and health state."""
    pipe = client.pipeline(transaction=False)
    write_backend(pipe, backend, view)
    pipe.execute()


def write_backend(pipe: Any, backend: Backend, view: BackendView) -> None:
    """Queue the writes that describe ``backend``; ``view`` gives the admin state, health and
    weight where Redis has none (rule 2)."""
    keys = backend_keys(backend.name)
    pipe.sadd(BACKENDS, backend.name)
    if len(backend.servers) > PAD_ABOVE:
        pipe.hsetnx(keys.inflight, HASHTABLE_PAD, 0)
    for index, (server, seen) in enumerate(zip(backend.servers, view.servers, strict=True)):
        pipe.zadd(keys.servers, {server.name: index})
        key = keys.server(server.name)
        pipe.hset(
            key,
            mapping={
                "addr": f"{server.host}:{server.port}",
                "cfg_weight": server.weight,
                "maxconn": server.maxconn,
                "maxqueue": server.maxqueue,
                "backup": int(server.backup),
                "cookie": server.cookie or "",
                "slowstart": server.slowstart,
                "check": int(server.check),
                "rise": server.rise,
                "fall": server.fall,
            },
        )
        pipe.hsetnx(key, "admin", seen.admin.value)
        pipe.hsetnx(key, "oper", seen.oper.value)
        pipe.hsetnx(key, "weight", seen.weight)


def _forget_removed_servers(client: Client, keys: BackendKeys, backend: Backend) -> None:
    configured = {server.name for server in backend.servers}
    known = cast(list[str], client.zrange(keys.servers, 0, -1))
    removed = [name for name in known if name not in configured]
    if not removed:
        return
    pipe = client.pipeline(transaction=False)
    pipe.zrem(keys.servers, *removed)
    pipe.hdel(keys.total, *removed)
    for name in removed:
        pipe.delete(keys.server(name), keys.server_stats(name))
    pipe.execute()
