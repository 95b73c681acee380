"""Active health checks, once per fleet: every process runs this loop, but a server is checked
only by the process holding its lease (DESIGN.md invariant 3).

Rules:
1. Every ``TICK`` seconds the loop claims (or renews) the lease of every checked server; a
   lease it holds is renewed long before its TTL, and one whose holder died is taken over by the
   first process that claims after it expired.
2. A held server is checked when due: ``inter`` after the previous check while UP,
   ``fastinter`` while going up or down, ``downinter`` while DOWN; when passive observation's
   ``on-error`` acts, the next check comes ``fastinter`` after it (seen at the next claim).
   A newly taken-over server is checked at once. The loop sleeps until the next claim or the
   next due check, whichever comes first, so an ``inter`` shorter than ``TICK`` is kept (a
   check's end wakes the loop, since it sets the next due time).
3. A check runs in its own greenlet and records its result through the lease-guarded script;
   the loop never waits on a server. On stop, leases are handed back so another process takes
   over at once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from geoproxy.balance.view import OperState
from geoproxy.config.kw_ssl_server import checks_use_tls
from geoproxy.config.model import Backend, ProxyMode, Server
from geoproxy.health.external import ExternalTarget
from geoproxy.health.probe import CheckResult, CheckTarget, run_check
from geoproxy.health.verdict import next_interval
from geoproxy.runtime.tls_client import ClientTls
from geoproxy.state.health_store import CheckOutcome, HealthStore, HealthStoreUnavailable

TICK = 0.5

log = logging.getLogger("geoproxy.health")


def check_target(backend: Backend, server: Server) -> CheckTarget:
    """Where and how long to check ``server``, as HAProxy's manual says: with ``timeout check``,
    connect within min(``timeout connect``, ``inter``) and read within ``timeout check``; without
    it, the whole check within ``inter``."""
    timeouts = backend.timeouts
    if timeouts.check:
        connect = min(timeouts.connect or server.inter, server.inter)
        total = connect + timeouts.check
    else:
        connect = total = server.inter
    return CheckTarget(
        host=server.check_addr or server.host,
        port=server.check_port or server.port,
        timeout=total,
        connect_timeout=connect,
        http=backend.httpchk,
        host_header=f"{server.host}:{server.port}",
        tcp_check=backend.tcp_check,
        send_proxy=server.send_proxy if server.check_send_proxy else None,
        tls=ClientTls(server.tls, for_checks=True) if checks_use_tls(server) else None,
        external=_external_target(backend, server),
    )


def _external_target(backend: Backend, server: Server) -> ExternalTarget | None:
    """``option external-check``: the command is told the server's traffic address, and is
    killed after ``timeout check``, else ``inter``."""
    check = backend.external_check
    if check is None:
        return None
    return ExternalTarget(
        check=check,
        proxy_name=backend.name,
        server_name=server.name,
        server_id=backend.servers.index(server) + 1,  # HAProxy's automatic server id
        server_addr=server.host,
        server_port=server.port,
        maxconn=server.maxconn,
        tls=server.ssl,
        proto="h1" if backend.mode is ProxyMode.HTTP else "tcp",
        timeout=backend.timeouts.check or server.inter,
    )


@dataclass(slots=True)
class _Schedule:
    server: Server
    target: CheckTarget
    due: float = 0.0
    running: bool = False
    state: OperState = OperState.UP
    fastinter_seen: int = 0  # the last on-error event acted on (Redis time, ms)


@dataclass(slots=True)
class _BackendChecks:
    backend: Backend
    schedules: dict[str, _Schedule] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    observed: tuple[str, ...] = ()  # servers whose on-error may ask for fastinter


class HealthChecker:
    def __init__(
        self,
        store: HealthStore,
        backends: Sequence[Backend],
        checker_id: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        address_of: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self._store = store
        # servers under run-time resolution are checked where they are now (``resolvers``)
        self._address_of = address_of
        self._id = checker_id
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._next_claim = 0.0
        self._paused = False
        self._thread: threading.Thread | None = None
        self._backends = [
            _BackendChecks(
                backend,
                {
                    server.name: _Schedule(server, check_target(backend, server))
                    for server in backend.servers
                    if server.check
                },
            )
            for backend in backends
        ]
        self._backends = [checks for checks in self._backends if checks.schedules]
        for checks in self._backends:
            checks.observed = tuple(
                name
                for name, schedule in checks.schedules.items()
                if schedule.server.observe is not None and schedule.server.fastinter
            )

    def start(self) -> None:
        if not self._backends:
            return
        self._thread = threading.Thread(target=self._run, name="geoproxy-checker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for checks in self._backends:
            try:
                self._store.give_up_checks(checks.backend.name, sorted(checks.held), self._id)
            except Exception as error:  # Redis away: the leases expire by themselves
                log.warning(
                    "could not hand back the check leases of %s: %s", checks.backend.name, error
                )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the tick: a check ending during it wakes the wait
            try:
                pause = self.tick()
            except HealthStoreUnavailable as error:
                self._pause(error)
                pause = TICK
            except Exception:
                log.exception("health checker tick failed; retrying")
                self._next_claim = 0.0
                pause = TICK
            else:
                if self._paused:
                    self._paused = False
                    log.warning("health checks resume: Redis answers again")
            self._wake.wait(pause)

    def _pause(self, error: HealthStoreUnavailable) -> None:
        """Redis is away: hold no lease (no result could be recorded) and claim again at the
        next tick; the outage is logged once (DESIGN.md invariant 4)."""
        for checks in self._backends:
            checks.held = set()
        self._next_claim = 0.0
        if not self._paused:
            self._paused = True
            log.error("health checks paused while Redis is unreachable (%s)", error)

    def tick(self) -> float:
        """Claim leases when a claim is due, then start every check that is due (rules 1 and
        2); returns the seconds until the next claim or the next due check."""
        now = self._clock()
        if now >= self._next_claim:
            self._claim(now)
            self._next_claim = now + TICK
        wake = self._next_claim
        for checks in self._backends:
            for name in checks.held:
                schedule = checks.schedules[name]
                if not schedule.running and schedule.due <= now:
                    schedule.running = True
                    threading.Thread(
                        target=self._check, args=(checks.backend, schedule), daemon=True
                    ).start()
                elif not schedule.running:
                    wake = min(wake, schedule.due)
        return max(wake - now, 0.001)

    def _claim(self, now: float) -> None:
        """Take or renew every lease (rule 1); a server newly held is due at once."""
        for checks in self._backends:
            held = self._store.claim_checks(checks.backend.name, list(checks.schedules), self._id)
            for name in held - checks.held:
                checks.schedules[name].due = now
            checks.held = held
            self._hasten(checks, now)

    def _hasten(self, checks: _BackendChecks, now: float) -> None:
        """Bring a held server's next check forward to ``fastinter`` once per on-error event
        (rule 2), as HAProxy requeues the check task when passive observation acts."""
        observed = [name for name in checks.observed if name in checks.held]
        stamps = self._store.fastinter_requests(checks.backend.name, observed)
        for name, stamp in stamps.items():
            schedule = checks.schedules[name]
            if stamp > schedule.fastinter_seen:
                schedule.fastinter_seen = stamp
                fastinter = schedule.server.fastinter or schedule.server.inter
                schedule.due = min(schedule.due, now + fastinter)

    def _check(self, backend: Backend, schedule: _Schedule) -> None:
        try:
            target = self._target(backend, schedule)
            if target is None:  # MAINT (resolution): no address to check
                schedule.due = self._clock() + schedule.server.inter
                return
            result = run_check(target)
            outcome = self._store.record_check(
                backend.name,
                schedule.server,
                self._id,
                (result.passed, result.code, result.description, result.duration_ms),
            )
            if outcome is not None:
                self._after(backend, schedule, result, outcome)
            else:  # the lease went to another process: leave the server to it
                schedule.due = self._clock() + schedule.server.inter
        except HealthStoreUnavailable:  # the loop logs the outage
            schedule.due = self._clock() + schedule.server.inter
        except Exception:
            log.exception("health check of %s/%s failed", backend.name, schedule.server.name)
            schedule.due = self._clock() + schedule.server.inter
        finally:
            schedule.running = False
            self._wake.set()

    def _target(self, backend: Backend, schedule: _Schedule) -> CheckTarget | None:
        """The check's target: a resolved server's current address, None while it has none."""
        server = schedule.server
        if self._address_of is None or server.resolution is None or \
                server.resolution.resolvers is None or server.check_addr:
            return schedule.target
        address = self._address_of(backend.name, server.name)
        if address is None:
            return schedule.target
        if not address:
            return None
        external = schedule.target.external
        if external is not None:  # the command is told where the server is now
            external = dataclasses.replace(external, server_addr=address)
        return dataclasses.replace(schedule.target, host=address, external=external)

    def _after(
        self, backend: Backend, schedule: _Schedule, result: CheckResult, outcome: CheckOutcome
    ) -> None:
        schedule.state = OperState(outcome.after)
        interval = next_interval(schedule.server, schedule.state)
        if outcome.fastinter and schedule.state is not OperState.DOWN:
            interval = schedule.server.fastinter or schedule.server.inter
        schedule.due = self._clock() + interval
        if outcome.changed_running:
            verdict = "UP" if schedule.state in (OperState.UP, OperState.GOING_DOWN) else "DOWN"
            log.warning(
                "Server %s/%s is %s, reason: %s, check duration: %dms.",
                backend.name,
                schedule.server.name,
                verdict,
                result.description,
                result.duration_ms,
            )
