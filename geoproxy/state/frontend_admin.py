"""Frontends an operator disabled (``disable frontend F`` on the Runtime API), fleet-wide.

Rules:
1. ``gp:frontends:admin`` is a HASH: frontend name -> ``disabled`` while an operator keeps
   that frontend disabled; no field means enabled (HAProxy's state at start). A change is one
   HSETNX or HDEL, so of two operators racing on two hosts' sockets exactly one changes the
   state and the other gets HAProxy's "already" answer.
2. The state outlives workers, reloads and restarts of every host sharing the Redis, as a
   server's admin state does (``registry.py`` rule 2): a host that reloads or restarts does
   not reopen, for itself, a frontend the operator closed for the fleet. (HAProxy forgets it
   on reload: its state is one process's.)
3. Readers get the names with one HKEYS, never on a request's path: each gunicorn master polls
   it (``runtime/frontend_gate.py``), each worker reads it in its heartbeat's pipeline
   (``queue_disabled``).
4. Raises redis-py's errors when Redis is away, and ``RedisUrlError`` for a URL it cannot use.
"""

from __future__ import annotations

from typing import Any, cast

from geoproxy.state.connect import Client, connect
from geoproxy.state.keys import FRONTENDS_ADMIN

DISABLED = "disabled"
_TIMEOUT = 0.5  # seconds, as every other Redis call of geoproxy


class FrontendAdmin:
    """The fleet's disabled frontends on one Redis (module rules)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @classmethod
    def connect(cls, url: str) -> FrontendAdmin:
        return cls(connect(url, _TIMEOUT))

    def disable(self, frontend: str) -> bool:
        """Disable ``frontend`` for the fleet; False when it was disabled already."""
        return bool(self._client.hsetnx(FRONTENDS_ADMIN, frontend, DISABLED))

    def enable(self, frontend: str) -> bool:
        """Enable ``frontend`` again; False when it was not disabled."""
        return bool(self._client.hdel(FRONTENDS_ADMIN, frontend))

    def disabled(self) -> frozenset[str]:
        """The names of every frontend disabled now."""
        return frozenset(cast(list[str], self._client.hkeys(FRONTENDS_ADMIN)))

    def close(self) -> None:
        self._client.close()


def queue_disabled(pipe: Any) -> None:
    """Queue the read of ``FrontendAdmin.disabled`` on ``pipe``; its reply is the list of
    names."""
    pipe.hkeys(FRONTENDS_ADMIN)

