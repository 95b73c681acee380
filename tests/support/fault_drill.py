"""The fault drill: steady traffic through two geoproxy hosts while Redis, a worker, a server and
a whole host are killed in turn; what every request came to, phase by phase.

The phases: baseline; Redis killed (it stays away for the phase); Redis back, empty (a new
redis-server on the same port); one worker of host A killed; server s3 killed (for good); the
host holding the most check leases killed, master and workers at once (A on a tie, so that the
survivor has checks to take over).

Shared by ``scripts/fault_table.py`` (long phases, prints the README's table) and
``tests/e2e/test_faults.py`` (short phases, asserts the targets).

Rules:
- Everything runs on 127.0.0.1, on free ports (tests/support/fault_fleet.py): one
  redis-server, three demo backends (s1, s2, s3; real processes), two ``geoproxy run`` hosts
  A and B of two workers each. Every process is stopped by pid; a kill is a SIGKILL by pid.
- The traffic is ``FailoverTraffic`` (its module says what counts as 2xx, 5xx, cut and lost,
  and when a request fails over to the other host). It runs from the first phase to the last
  without a break; a request belongs to the phase in which it started.
- A phase lasts ``phase_seconds``; its fault happens ``fault_after`` seconds in, so every
  phase starts with a stretch of traffic on the fleet the previous phase left. What a phase
  measures after its fault (how long until the fleet healed) is polled with a bound
  (``HEAL_TIMEOUT``); a phase that waits longer than ``phase_seconds`` simply lasts longer.
  A bound that ran out is recorded as None, never raised: the table shows it, the test fails on
  it.
- What a kill may take away is ``Phase.exposed``: the requests under way at the killed
  process's host (any host, for a server) between the SIGKILL and the exit of its last thread.
  The target is that no other request is lost, cut or answered 5xx.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.support.failover_traffic import FailoverTraffic, Kind, Request
from tests.support.fault_fleet import HOSTS, FaultFleet

HEAL_TIMEOUT = 15.0


@dataclass
class Phase:
    """One phase's result: its requests and what it measured (``facts``: seconds, counts, pids;
    None where a bound ran out). A phase that kills a process sets ``died_at`` (when the last
    one had exited) and ``victim`` (the index of the host whose requests it may take away, None
    for all hosts): see ``exposed``."""

    name: str
    started: float = 0.0
    fault_at: float = 0.0
    died_at: float | None = None
    victim: int | None = None
    requests: list[Request] = field(default_factory=list)
    facts: dict[str, float | int | str | None] = field(default_factory=dict)

    def exposed(self) -> list[Request]:
        """The requests a kill could take away: those under way at the victim host at some
        moment between the SIGKILL and the end of the killed process (written before it had
        gone, not finished before the signal)."""
        if self.died_at is None:
            return []
        return [
            r
            for r in self.requests
            if (self.victim is None or r.host == self.victim)
            and r.started <= self.died_at
            and r.ended >= self.fault_at
        ]

    def count(self, kind: Kind) -> int:
        return sum(1 for r in self.requests if r.kind is kind)

    @property
    def sent(self) -> int:
        return len(self.requests)

    @property
    def ok(self) -> int:
        return sum(1 for r in self.requests if r.is_2xx)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.requests if r.is_5xx)

    @property
    def other(self) -> int:
        """Answered, neither 2xx nor 5xx (none expected)."""
        return self.count(Kind.ANSWERED) - self.ok - self.errors

    @property
    def failovers(self) -> int:
        return sum(1 for r in self.requests if r.failover)


def heal_times(
    conditions: dict[str, Callable[[], bool | None]], timeout: float = HEAL_TIMEOUT
) -> dict[str, float | None]:
    """Poll every condition until each has held once; the seconds each took (None: not within
    ``timeout``)."""
    started = time.monotonic()
    found: dict[str, float | None] = dict.fromkeys(conditions)
    while time.monotonic() - started < timeout:
        for name, condition in conditions.items():
            if found[name] is None and condition():
                found[name] = round(time.monotonic() - started, 2)
        if all(value is not None for value in found.values()):
            break
        time.sleep(0.05)
    return found


# -- the phases ------------------------------------------------------------------------------

PhaseAction = Callable[[FaultFleet, Phase], None]


def _baseline(fleet: FaultFleet, phase: Phase) -> None:
    pass


def _redis_killed(fleet: FaultFleet, phase: Phase) -> None:
    phase.facts["redis_killed"] = fleet.kill_redis()


def _redis_back(fleet: FaultFleet, phase: Phase) -> None:
    phase.facts["redis_started"] = fleet.restart_redis_empty()
    phase.facts["redis_away"] = round(time.monotonic() - fleet.redis_killed_at, 1)
    phase.facts["rebuilt_after"] = heal_times({"rebuilt": fleet.rebuilt})["rebuilt"]


def _worker_killed(fleet: FaultFleet, phase: Phase) -> None:
    host = fleet.hosts[0]
    pid = fleet.kill_worker(0)
    phase.died_at, phase.victim = time.monotonic(), 0
    worker = f"{HOSTS[0]}:{pid}"
    phase.facts["worker_pid"] = pid

    def replaced() -> bool:
        pids = host.worker_pids()
        booted = host.output()
        return (
            len(pids) == 2
            and pid not in pids
            and all(f"Booting worker with pid: {p}" in booted for p in pids)
        )

    def reaped() -> bool:
        return fleet.worker_hash_exists(worker) is False and worker not in fleet.live_workers()

    healed = heal_times({"replaced": replaced, "reaped": reaped})
    phase.facts["replaced_after"] = healed["replaced"]
    phase.facts["reaped_after"] = healed["reaped"]


def _server_killed(fleet: FaultFleet, phase: Phase) -> None:
    phase.facts["pid"] = fleet.kill_server("s3")
    phase.died_at = time.monotonic()
    healed = heal_times({"down": lambda: fleet.server_state("s3").get("oper") == "down"})
    phase.facts["marked_down_after"] = healed["down"]


def _host_killed(fleet: FaultFleet, phase: Phase) -> None:
    """Kill the host holding the most check leases (A on a tie), so that the survivor has
    checks to take over."""
    before = fleet.check_holders()
    held = [[s for s, h in before.items() if h and h.startswith(f"{n}:")] for n in HOSTS]
    victim = 1 if len(held[1]) > len(held[0]) else 0
    survivor = f"{HOSTS[1 - victim]}:"
    pids = fleet.kill_host(victim)
    phase.died_at, phase.victim = time.monotonic(), victim
    phase.facts.update(host=_label(victim), killed=len(pids), checks_held=len(held[victim]))

    def taken_over() -> bool:
        holders = fleet.check_holders().values()
        return all(holder is not None and holder.startswith(survivor) for holder in holders)

    def reaped() -> bool:
        workers = fleet.live_workers()
        return bool(workers) and all(worker.startswith(survivor) for worker in workers)

    healed = heal_times({"checks": taken_over, "reaped": reaped})
    phase.facts["checks_taken_over_after"] = healed["checks"]
    phase.facts["workers_reaped_after"] = healed["reaped"]
    last = {name: fleet.server_state(name).get("checked_at") for name in held[victim]}
    waits = heal_times({name: _checked_since(fleet, name, at) for name, at in last.items()})
    done = [wait for wait in waits.values() if wait is not None]
    phase.facts["checked_again_after"] = max(done, default=0.0) if len(done) == len(waits) else None


def _checked_since(fleet: FaultFleet, server: str, checked_at: str | None) -> Callable[[], bool]:
    return lambda: fleet.server_state(server).get("checked_at") != checked_at


PHASES: tuple[tuple[str, PhaseAction], ...] = (
    ("baseline", _baseline),
    ("Redis killed (SIGKILL)", _redis_killed),
    ("Redis back, empty", _redis_back),
    ("worker of host A killed", _worker_killed),
    ("server s3 killed", _server_killed),
    ("a whole host killed (master + workers)", _host_killed),
)


def run_drill(
    fleet: FaultFleet, progress: Callable[[str], None] = lambda line: None
) -> list[Phase]:
    """Run every phase under one continuous traffic; then stop the traffic and measure how long
    the fleet's in-flight counts take to come back to 0 (the last phase's ``drained_after``)."""
    settings = fleet.settings
    phases = [Phase(name) for name, _ in PHASES]
    traffic = FailoverTraffic(
        fleet.ports,
        settings.path,
        clients=settings.clients,
        pause=settings.pause,
        timeout=settings.timeout,
    )
    with traffic:
        for phase, (_, action) in zip(phases, PHASES, strict=True):
            progress(f"phase: {phase.name}")
            phase.started = time.monotonic()
            time.sleep(settings.fault_after)
            phase.fault_at = time.monotonic()
            action(fleet, phase)
            time.sleep(max(0.0, phase.started + settings.phase_seconds - time.monotonic()))
        traffic.stop()
    # Phases are contiguous: every request belongs to exactly one.
    bounds = [0.0] + [phase.started for phase in phases[1:]] + [float("inf")]
    for phase, since, until in zip(phases, bounds, bounds[1:], strict=False):
        phase.requests = traffic.requests(since, until)
    drained = heal_times({"drained": lambda: not any((fleet.inflight() or {"?": 1}).values())})
    phases[-1].facts["drained_after"] = drained["drained"]
    return phases


# -- the table -------------------------------------------------------------------------------


def _seconds(value: float | int | str | None) -> str:
    return f"not within {HEAL_TIMEOUT:g} s" if value is None else f"{value} s"


def notes(phase: Phase) -> str:
    """What the phase did and measured, in words."""
    facts = phase.facts
    said: list[str] = []
    if phase.died_at is not None:
        where = "in all" if phase.victim is None else f"at {_label(phase.victim)}"
        said.append(
            f"{len(phase.exposed())} requests under way {where} from the SIGKILL to the end "
            f"of the killed process ({(phase.died_at - phase.fault_at) * 1000:.0f} ms)"
        )
    if "redis_killed" in facts:
        said.append("the hosts route from their snapshots")
    if "rebuilt_after" in facts:
        said.append(
            f"Redis was away {facts['redis_away']} s; once back, every server and worker was "
            f"registered again after {_seconds(facts['rebuilt_after'])}"
        )
    if "worker_pid" in facts:
        said.append(
            f"gunicorn replaced the worker after {_seconds(facts['replaced_after'])}, its "
            f"in-flight counts were given back after {_seconds(facts['reaped_after'])}"
        )
    if "marked_down_after" in facts:
        said.append(f"s3 marked DOWN after {_seconds(facts['marked_down_after'])}")
    if "checks_taken_over_after" in facts:
        said.append(
            f"{facts['host']} killed, it held {facts['checks_held']} of 3 check leases: "
            f"the other host held all 3 after {_seconds(facts['checks_taken_over_after'])} and "
            f"had checked each again after {_seconds(facts['checked_again_after'])}; the dead "
            f"workers' counts given back after {_seconds(facts['workers_reaped_after'])}"
        )
    if phase.failovers:
        said.append(f"{phase.failovers} requests failed over to the other host")
    if phase.other:
        said.append(f"{phase.other} answered neither 2xx nor 5xx")
    if "drained_after" in facts:
        said.append(
            f"traffic stopped: every in-flight count in Redis at 0 after "
            f"{_seconds(facts['drained_after'])}"
        )
    return "; ".join(said) or "-"


def _label(host: int) -> str:
    return f"host {'AB'[host]}"


def markdown_table(phases: Sequence[Phase]) -> str:
    lines = [
        "| phase | sent | 2xx | 5xx | cut | lost | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for phase in phases:
        lines.append(
            f"| {phase.name} | {phase.sent} | {phase.ok} | {phase.errors} | "
            f"{phase.count(Kind.CUT)} | {phase.count(Kind.LOST)} | {notes(phase)} |"
        )
    return "\n".join(lines)
