"""The resolver loop: every process runs it, but a group of servers sharing an FQDN is resolved
only by the process holding the group's lease (as health checks are: one per server,
fleet-wide).

Rules:
1. Every ``TICK`` seconds the loop claims (or renews) the lease of every group; a newly held
   group is resolved at once.
2. A held group is resolved every ``hold valid`` after a valid answer, every ``timeout
   retry`` after a failed one (HAProxy's ``resolve_retries`` then bound how long the failure
   lasts: ``hold`` periods decide when the servers lose their addresses, ``policy.py``).
3. The answer is written to Redis under the lease (``DnsStore.record``); every worker's
   snapshot refresh then routes to it. Redis away: nothing is resolved or written, the
   servers keep their addresses (DESIGN.md invariant 4), and the loop claims again later.
4. On stop, leases are handed back so another process takes over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from geoproxy.config.model import Config
from geoproxy.resolve.groups import Group, resolution_groups
from geoproxy.resolve.lookup import lookup
from geoproxy.resolve.policy import after_failure, assign
from geoproxy.resolve.startup import Lookup
from geoproxy.state.dns_store import DnsStore
from geoproxy.state.health_store import HealthStoreUnavailable

TICK = 0.5

log = logging.getLogger("geoproxy.resolve")


@dataclass(slots=True)
class _GroupState:
    group: Group
    due: float = 0.0
    last_seen: dict[str, float] = field(default_factory=dict)  # address -> wall clock


class Resolver:
    def __init__(self, store: DnsStore, config: Config, holder: str, *,
                 resolve: Lookup = lookup, wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self._holder = holder
        self._resolve = resolve
        self._wall = wall
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._states: dict[str, list[_GroupState]] = {}
        for backend in config.backends:
            groups = resolution_groups(config, backend)
            if groups:
                self._states[backend.name] = [_GroupState(group) for group in groups]
        self._held: dict[str, set[str]] = {name: set() for name in self._states}

    @property
    def has_work(self) -> bool:
        return bool(self._states)

    def start(self) -> None:
        if not self._states:
            return
        self._thread = threading.Thread(target=self._run, name="geoproxy-resolver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for backend, held in self._held.items():
            try:
                self._store.give_up(backend, sorted(held), self._holder)
            except Exception as error:  # Redis away: the leases expire by themselves
                log.warning("could not hand back the resolver leases of %s: %s", backend, error)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except HealthStoreUnavailable:
                for held in self._held.values():
                    held.clear()
            except Exception:
                log.exception("resolver tick failed; retrying")
            self._stop.wait(TICK)

    def tick(self) -> None:
        """Claim every lease, then resolve every held group that is due (rules 1 and 2)."""
        now = self._wall()
        for backend, states in self._states.items():
            names = [state.group.name for state in states]
            held = self._store.claim(backend, names, self._holder)
            for state in states:
                name = state.group.name
                if name in held and name not in self._held[backend]:
                    state.due = now
            self._held[backend] = held
            for state in states:
                if state.group.name in held and state.due <= now:
                    self.resolve(state)

    def resolve(self, state: _GroupState) -> None:
        """Resolve one group and write what changed (rule 3)."""
        group = state.group
        names = [server.name for server in group.servers]
        stored = self._store.addresses(group.backend, names)
        answer = self._resolve(group.fqdn, group.resolution)
        now = self._wall()
        resolvers = group.resolvers
        hold = dict(resolvers.hold)
        if answer.failure is not None:
            state.due = now + resolvers.timeout_retry
            last_valid = max((at for _, at in stored.values()), default=0) / 1000
            lost = after_failure({n: a for n, (a, _) in stored.items()}, answer.failure,
                                 last_valid, now, hold)
            if lost is not None and any(stored[name][0] for name in names):
                log.warning("'%s' (backend %s) does not resolve (%s) for longer than 'hold "
                            "%s': its servers go to MAINT", group.fqdn, group.backend,
                            answer.failure, answer.failure)
                self._store.record(group.backend, group.name, self._holder, lost,
                                   int(now * 1000))
            return
        state.due = now + resolvers.hold_for("valid")
        for address in answer.addresses:
            state.last_seen[address] = now
        obsolete = resolvers.hold_for("obsolete")
        kept = frozenset(a for a, seen in state.last_seen.items() if now - seen <= obsolete)
        state.last_seen = {a: seen for a, seen in state.last_seen.items() if a in kept}
        addresses = assign([(name, stored[name][0]) for name in names], answer.addresses,
                           kept, group.resolution.allow_dup_ip)
        self._store.record(group.backend, group.name, self._holder, addresses, int(now * 1000))
