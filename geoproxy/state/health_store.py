"""Health and admin state on Redis: checker leases, check results, passive observations,
operator actions. Part of the state layer (the only one that talks to Redis).

Rules:
1. One checker per server, fleet-wide: a process checks a server only while it holds that
   server's lease (``gp:{B}:chk:S``, TTL ``LEASE_TTL_MS``), and records a result only while it
   still holds it (the script checks), so a slow check that outlived its lease changes nothing.
2. Health and admin state live in the server's hash; every worker's snapshot refresh (twice a
   second) reads them, which is how a verdict or an operator action reaches every worker of
   every host within a second (DESIGN.md invariant 3).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from geoproxy.balance.view import AdminState
from geoproxy.state.connect import REDIS_ERRORS, Client
from geoproxy.state.keys import backend_keys
from geoproxy.state.scripts import Scripts

if TYPE_CHECKING:  # (geoproxy set imports this module: not the configuration's)
    from geoproxy.config.model import Server

LEASE_TTL_MS = 3000  # a dead checker's servers are taken over within this (+ a claim tick)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one recorded check did: the server's health state before and after, and whether
    passive observation asked for ``fastinter``."""

    before: str
    after: str
    fastinter: bool

    @property
    def changed_running(self) -> bool:
        running = ("up", "going-down")
        return (self.before in running) != (self.after in running)


class HealthStoreUnavailable(Exception):
    """Redis cannot be reached: no lease can be claimed and no check result recorded."""


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except REDIS_ERRORS as error:
        raise HealthStoreUnavailable(str(error)) from error


class HealthStore:
    """The checker's side raises ``HealthStoreUnavailable`` when Redis is away; the operator's
    side (``set_admin``, ``set_weight``) lets redis-py's errors through to the command line."""

    def __init__(self, client: Client, scripts: Scripts) -> None:
        self._client = client
        self._scripts = scripts

    def claim_checks(
        self, backend: str, servers: Sequence[str], checker: str, ttl_ms: int = LEASE_TTL_MS
    ) -> set[str]:
        """Take or renew the checker lease of ``servers``; returns those the caller holds."""
        if not servers:
            return set()
        keys = backend_keys(backend)
        leases = [keys.check_lease(name) for name in servers]
        with _reachable():
            held = self._scripts.call(self._client, "claim_checks", leases, [checker, ttl_ms])
        return {name for name, mine in zip(servers, held, strict=True) if int(mine)}

    def give_up_checks(self, backend: str, servers: Sequence[str], checker: str) -> None:
        """Hand back the leases still ours, so another process takes them over at once."""
        self.claim_checks(backend, servers, checker, ttl_ms=1)

    def record_check(
        self,
        backend: str,
        server: Server,
        checker: str,
        result: tuple[bool, str, str, int],
    ) -> CheckOutcome | None:
        """Apply one check result (passed, code, description, duration ms); None when the
        lease is no longer ours."""
        keys = backend_keys(backend)
        passed, code, description, duration_ms = result
        with _reachable():
            reply = self._scripts.call(
                self._client,
                "record_check",
                [keys.server(server.name), keys.check_lease(server.name),
                 keys.server_stats(server.name)],
                [checker, int(passed), server.rise, server.fall, code, description, duration_ms],
            )
        if not reply:
            return None
        return CheckOutcome(reply[0], reply[1], reply[2] not in ("0", ""))

    def fastinter_requests(self, backend: str, servers: Sequence[str]) -> dict[str, int]:
        """When passive observation last asked each of ``servers`` for ``fastinter`` (Redis
        time, ms; absent: not since its last good check)."""
        if not servers:
            return {}
        keys = backend_keys(backend)
        pipe = self._client.pipeline(transaction=False)
        for name in servers:
            pipe.hget(keys.server_stats(name), "fastinter")
        with _reachable():
            stamps = zip(servers, pipe.execute(), strict=True)
        return {name: int(stamp) for name, stamp in stamps if stamp and stamp.isdigit()}

    def set_admin(self, backend: str, server: str, state: AdminState) -> None:
        """Leaving MAINT, a checked server runs one failed check away from DOWN until its next
        check passes, as in HAProxy (``lua/set_admin.lua``)."""
        keys = backend_keys(backend)
        self._require(keys.servers, backend, server)
        self._scripts.call(self._client, "set_admin", [keys.server(server)], [state.value])

    def set_health(self, backend: str, server: str, health: str) -> None:
        """The Runtime API's ``set server B/S health up|stopping|down`` (``lua/set_health.lua``)."""
        keys = backend_keys(backend)
        self._require(keys.servers, backend, server)
        self._scripts.call(self._client, "set_health", [keys.server(server)], [health])

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        if not 0 <= weight <= 256:
            raise ValueError(f"weight {weight} is out of range: 0 to 256, as in HAProxy")
        self._set(backend, server, "weight", str(weight))

    def _require(self, servers_key: str, backend: str, server: str) -> None:
        if not self._client.zscore(servers_key, server):
            known = self._client.zrange(servers_key, 0, -1)
            if server not in known:
                raise KeyError(f"no server {backend}/{server} in this Redis")

    def _set(self, backend: str, server: str, field: str, value: str) -> None:
        keys = backend_keys(backend)
        self._require(keys.servers, backend, server)
        seconds, micros = self._client.time()
        self._client.hset(
            keys.server(server),
            mapping={field: value, "admin_changed": seconds * 1000 + micros // 1000},
        )

    def server_state(self, backend: str, server: str) -> dict[str, Any]:
        """The server's statistics and state, as one dict (the state wins a shared name)."""
        keys = backend_keys(backend)
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(keys.server_stats(server))
        pipe.hgetall(keys.server(server))
        stats, state = pipe.execute()
        return {**stats, **state}
