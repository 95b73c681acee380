"""What the Runtime API (``stats socket``) reads and changes in the fleet's shared state: the
same fields, scripts and keys as ``geoproxy set`` and the stats page, so that a change made on
any host's socket reaches every worker of every host at its next snapshot refresh.

Rules:
1. Admin state and weight go through ``HealthStore.set_admin``/``set_weight``, exactly as
   ``geoproxy set`` and the stats page's actions do; nothing here writes them another way.
2. ``set_maxconn`` writes the server hash's ``maxconn`` (every snapshot reads it);
   ``shutdown_sessions`` counts a request in its ``shutdowns`` field, which every worker's
   snapshot refresh turns into aborting its streaming responses from that server.
3. Stick-table entries are the request path's own keys (``keys.stick_key``): a STRING holding
   the server name, with the table's expiry as TTL. Listing them scans ``gp:{T}:stick:*``
   (a tool's call, never the request path's).
4. Errors: ``KeyError`` for a server Redis does not know; redis-py's errors when Redis is away.
5. ``disable_frontend``/``enable_frontend`` change ``gp:frontends:admin`` through
   ``FrontendAdmin`` (``frontend_admin.py``), which every worker and master polls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from geoproxy.balance.view import AdminState
from geoproxy.state.connect import Client, connect
from geoproxy.state.frontend_admin import FrontendAdmin
from geoproxy.state.health_store import HealthStore
from geoproxy.state.keys import backend_keys, stick_key
from geoproxy.state.report import read_fleet
from geoproxy.state.scripts import Scripts
from geoproxy.state.store import FleetReport

_TIMEOUT = 0.5  # seconds, as every other Redis call of geoproxy
_SCAN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class StickRow:
    """One stick-table entry as Redis holds it: its key, the milliseconds before it expires
    (None: no expiry) and its data (``server``: the name of the server it sends to)."""

    key: str
    expire_ms: int | None
    data: dict[str, str]


class RuntimeOps:
    """The Runtime API's view of one Redis (a single server, Sentinel or Cluster URL)."""

    def __init__(self, url: str) -> None:
        self._client: Client = connect(url, _TIMEOUT)
        self.health = HealthStore(self._client, Scripts())
        self.frontends = FrontendAdmin(self._client)

    def close(self) -> None:
        self._client.close()

    # -- servers ------------------------------------------------------------------------------

    def fleet_report(self) -> FleetReport:
        return read_fleet(self._client)

    def set_admin(self, backend: str, server: str, state: AdminState) -> None:
        self.health.set_admin(backend, server, state)

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self.health.set_weight(backend, server, weight)

    def set_health(self, backend: str, server: str, health: str) -> None:
        self.health.set_health(backend, server, health)

    def set_maxconn(self, backend: str, server: str, maxconn: int) -> None:
        self._known(backend, server)
        self._client.hset(backend_keys(backend).server(server), "maxconn", maxconn)

    def shutdown_sessions(self, backend: str, server: str) -> None:
        self._known(backend, server)
        self._client.hincrby(backend_keys(backend).server(server), "shutdowns", 1)

    def _known(self, backend: str, server: str) -> None:
        if self._client.zscore(backend_keys(backend).servers, server) is None:
            raise KeyError(f"no server {backend}/{server} in this Redis")

    # -- frontends ----------------------------------------------------------------------------

    def disable_frontend(self, frontend: str) -> bool:
        """False: it was disabled already."""
        return self.frontends.disable(frontend)

    def enable_frontend(self, frontend: str) -> bool:
        """False: it was not disabled."""
        return self.frontends.enable(frontend)

    # -- stick tables -------------------------------------------------------------------------

    def _stick_keys(self, table: str) -> Iterator[str]:
        pattern = stick_key(_glob_escape(table), "*")
        return cast(Iterator[str], self._client.scan_iter(match=pattern, count=_SCAN_BATCH))

    def stick_rows(self, table: str, key: str | None = None) -> list[StickRow]:
        """Every entry of ``table`` (or only ``key``'s), in key order."""
        prefix = stick_key(table, "")
        names = [stick_key(table, key)] if key is not None else sorted(self._stick_keys(table))
        if not names:
            return []
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
            pipe.pttl(name)
        replies = pipe.execute()
        rows = []
        for index, name in enumerate(names):
            server, ttl = replies[2 * index], replies[2 * index + 1]
            if server is None:
                continue  # expired or cleared between the scan and the read
            expire = int(ttl) if ttl is not None and int(ttl) >= 0 else None
            rows.append(StickRow(name[len(prefix):], expire, {"server": server}))
        return rows

    def stick_clear(self, table: str, key: str | None = None) -> int:
        """Remove ``key``'s entry, or every entry of ``table``; how many were removed."""
        names = [stick_key(table, key)] if key is not None else list(self._stick_keys(table))
        removed = 0
        for name in names:  # one key a call: on a Cluster they are all in one slot anyway
            removed += int(self._client.delete(name))
        return removed

    def stick_set(self, table: str, key: str, server: str, expire_ms: int | None) -> None:
        """Send ``key`` to ``server`` from now on (HAProxy's ``set table ... data.server_id``),
        for ``expire_ms`` (None: no expiry)."""
        self._client.set(stick_key(table, key), server, px=expire_ms or None)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
