"""The fault drill: steady traffic through two geoproxy hosts while Redis, a worker, a server and
a whole host are killed in turn; what every request came to, phase by phase.

The phases: baseline; Redis killed (it stays away for the phase); Redis back, empty (a new
redis-server on the same port); one worker of host A killed; server s3 killed (for good); the
host holding the most check leases killed, master and workers at once (A on a tie, so that the
survivor has checks to take over).

Shared by ``scripts/fault_table.py`` (long phases, prints the README's table) and
``tests/e2e/test_faults.py`` (short phases, asserts the targets).

Rules:
- Everything runs on 127.0.0.1, on free ports: one redis-server, three demo backends (s1, s2,
  s3; real processes), two ``geoproxy run`` hosts (A and B: the same configuration but for
  the bind port, two workers each, ``GEOPROXY_HOSTNAME`` hostA / hostB so that worker ids and
  check leases name their host). Every process goes through the caller's ``ProcessRegistry``
  and is stopped by pid in ``FaultFleet.stop``; a kill is a SIGKILL by pid.
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

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis

from tests.support.backends import Backend, start_backends
from tests.support.failover_traffic import FailoverTraffic, Kind, Request
from tests.support.ports import free_ports
from tests.support.processes import ProcessRegistry
from tests.support.proxy_process import ProxyProcess, children, start_proxy
from tests.support.redis_topologies import RedisNode, start_node

HEAL_TIMEOUT = 15.0
BACKEND = "app"
SERVERS = ("s1", "s2", "s3")
HOSTS = ("hostA", "hostB")
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 5s
    retries 2
    option redispatch

frontend main
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance leastconn
    option httpchk GET /health
    default-server check inter {inter} fastinter {inter} downinter 1s rise 2 fall 2 observe layer7 error-limit 2 on-error mark-down
    server s1 {s1}
    server s2 {s2}
    server s3 {s3}
"""  # noqa: E501


@dataclass(frozen=True, slots=True)
class DrillSettings:
    """How long and how hard: ``clients`` concurrent clients, each pausing ``pause`` s between
    two requests of ``path``; phases of ``phase_seconds``, the fault ``fault_after`` s in."""

    phase_seconds: float = 6.0
    fault_after: float = 1.5
    clients: int = 8
    pause: float = 0.01
    path: str = "/slow?ms=20"
    inter: str = "200ms"
    timeout: float = 10.0


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


class FaultFleet:
    """Redis, three backends, two hosts (see the module rules)."""

    def __init__(self, registry: ProcessRegistry, directory: Path, settings: DrillSettings) -> None:
        self.registry = registry
        self.directory = directory
        self.settings = settings
        self.redis_nodes: list[RedisNode] = []
        self.backends: dict[str, Backend] = {}
        self.hosts: list[ProxyProcess] = []

    def start(self) -> FaultFleet:
        """Start everything; returns once both hosts run two booted workers."""
        self.redis_nodes.append(start_node(self.registry, self.directory / "redis1"))
        started = start_backends(self.registry, self.directory / "backends", names=SERVERS)
        self.backends = {backend.name: backend for backend in started}
        addresses = {name: backend.address for name, backend in self.backends.items()}
        for name, port in zip(HOSTS, free_ports(len(HOSTS)), strict=True):
            config = CONFIG.format(port=port, inter=self.settings.inter, **addresses)
            work_dir = self.directory / name
            work_dir.mkdir(parents=True)
            env = {"GEOPROXY_HOSTNAME": name}
            host = start_proxy(
                self.registry, config, work_dir, self.redis_url, 2, outlive_test=True, env=env
            )
            self.hosts.append(host)
        for host in self.hosts:
            host.wait_for_workers(2)
        return self

    @property
    def redis_port(self) -> int:
        return self.redis_nodes[0].port

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ports(self) -> list[int]:
        return [host.port for host in self.hosts]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1
        )

    def read(self, what: Callable[[redis.Redis], object]) -> object:
        """``what(client)``, or None while Redis does not answer."""
        try:
            with self.client() as client:
                return what(client)
        except REDIS_ERRORS:
            return None

    # -- faults ----------------------------------------------------------------------------------

    def kill_redis(self) -> int:
        node = self.redis_nodes[-1]
        pid = node.pid
        node.kill()
        return pid

    def restart_redis_empty(self) -> int:
        """A new redis-server on the same port, with nothing in it."""
        name = f"redis{len(self.redis_nodes) + 1}"
        node = start_node(self.registry, self.directory / name, port=self.redis_port, name=name)
        self.redis_nodes.append(node)
        return node.pid

    def kill_worker(self, host: int) -> int:
        """SIGKILL the first worker of ``host``; returns its pid once it has exited."""
        pid = self.hosts[host].worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        wait_gone([pid])
        return pid

    def kill_server(self, name: str) -> int:
        backend = self.backends[name]
        os.kill(backend.pid, signal.SIGKILL)
        backend.process.process.wait(timeout=10)
        return backend.pid

    def kill_host(self, host: int) -> list[int]:
        """SIGKILL the master and every worker of ``host`` at once; returns their pids once
        every one has exited."""
        master = self.hosts[host]
        pids = [master.pid, *sorted(children(master.pid))]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        master.process.process.wait(timeout=10)
        wait_gone(pids)
        return pids

    # -- what Redis says -----------------------------------------------------------------------

    def inflight(self) -> dict[str, int] | None:
        found = self.read(lambda c: c.hgetall(f"gp:{{{BACKEND}}}:inflight"))
        if found is None:
            return None
        return {k: int(v) for k, v in cast(dict[str, str], found).items()}

    def server_state(self, name: str) -> dict[str, str]:
        found = self.read(lambda c: c.hgetall(f"gp:{{{BACKEND}}}:srv:{name}"))
        return cast(dict[str, str], found or {})

    def check_holders(self) -> dict[str, str | None]:
        found = self.read(lambda c: [c.get(f"gp:{{{BACKEND}}}:chk:{s}") for s in SERVERS])
        holders = cast(list[str | None], found or [None] * len(SERVERS))
        return dict(zip(SERVERS, holders, strict=True))

    def live_workers(self) -> list[str]:
        found = self.read(lambda c: c.zrange(f"gp:{{{BACKEND}}}:workers", 0, -1))
        return cast(list[str], found or [])

    def worker_hash_exists(self, worker: str) -> bool | None:
        found = self.read(lambda c: c.exists(f"gp:{{{BACKEND}}}:w:{worker}"))
        return None if found is None else bool(found)

    def rebuilt(self) -> bool:
        """Every server registered again, with its states, and four live workers."""
        servers = self.read(lambda c: c.zrange(f"gp:{{{BACKEND}}}:servers", 0, -1))
        if sorted(cast(list[str], servers or [])) != list(SERVERS):
            return False
        if not all(self.server_state(s).get("oper") for s in SERVERS):
            return False
        return len(self.live_workers()) == 2 * len(HOSTS)

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        for backend in self.backends.values():
            backend.stop()
        for node in self.redis_nodes:
            node.stop()


def wait_gone(pids: Sequence[int], timeout: float = 10.0) -> None:
    """Return once none of ``pids`` runs any more (gone, or a zombie: its sockets are closed);
    raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(_runs(pid) for pid in pids):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"processes {list(pids)} still run {timeout:g}s after SIGKILL")
        time.sleep(0.001)


def _runs(pid: int) -> bool:
    """Whether any thread of ``pid`` still runs: a process's sockets are closed only when its
    last thread exits, and its main thread may be a zombie before the others are done."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


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

PhaseAction = Callable[[FaultFleet, FailoverTraffic, Phase], None]


def _baseline(fleet: FaultFleet, traffic: FailoverTraffic, phase: Phase) -> None:
    pass


def _redis_killed(fleet: FaultFleet, traffic: FailoverTraffic, phase: Phase) -> None:
    phase.facts["redis_pid"] = fleet.kill_redis()


def _redis_back(fleet: FaultFleet, traffic: FailoverTraffic, phase: Phase) -> None:
    phase.facts["redis_pid"] = fleet.restart_redis_empty()
    phase.facts["rebuilt_after"] = heal_times({"rebuilt": fleet.rebuilt})["rebuilt"]


def _worker_killed(fleet: FaultFleet, traffic: FailoverTraffic, phase: Phase) -> None:
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


def _server_killed(fleet: FaultFleet, traffic: FailoverTraffic, phase: Phase) -> None:
    phase.facts["pid"] = fleet.kill_server("s3")
    phase.died_at = time.monotonic()
    healed = heal_times({"down": lambda: fleet.server_state("s3").get("oper") == "down"})
    phase.facts["marked_down_after"] = healed["down"]


def _host_killed(fleet: FaultFleet, traffic: FailoverTraffic, phase: Phase) -> None:
    """Kill the host holding the most check leases (A on a tie), so that the survivor has
    checks to take over."""
    before = fleet.check_holders()
    held = [[s for s, h in before.items() if h and h.startswith(f"{n}:")] for n in HOSTS]
    victim = 1 if len(held[1]) > len(held[0]) else 0
    survivor = f"{HOSTS[1 - victim]}:"
    pids = fleet.kill_host(victim)
    phase.died_at, phase.victim = time.monotonic(), victim
    phase.facts.update(host=HOSTS[victim], killed=len(pids), checks_held=len(held[victim]))

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
            action(fleet, traffic, phase)
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
        where = "in all" if phase.victim is None else f"at {HOSTS[phase.victim]}"
        said.append(
            f"{len(phase.exposed())} requests under way {where} from the SIGKILL to the "
            f"process's end ({(phase.died_at - phase.fault_at) * 1000:.0f} ms)"
        )
    if "rebuilt_after" in facts:
        rebuilt = _seconds(facts["rebuilt_after"])
        said.append(f"servers and workers registered again after {rebuilt}")
    if "worker_pid" in facts:
        said.append(
            f"gunicorn replaced the worker after {_seconds(facts['replaced_after'])}, its "
            f"counts were reaped after {_seconds(facts['reaped_after'])}"
        )
    if "marked_down_after" in facts:
        said.append(f"s3 marked DOWN after {_seconds(facts['marked_down_after'])}")
    if "checks_taken_over_after" in facts:
        said.append(
            f"{facts['host']} killed, it held {facts['checks_held']} of 3 check leases: "
            f"the other host held all 3 after {_seconds(facts['checks_taken_over_after'])} and "
            f"had checked each again after {_seconds(facts['checked_again_after'])}; the dead "
            f"host's workers reaped after {_seconds(facts['workers_reaped_after'])}"
        )
    if phase.failovers:
        said.append(f"{phase.failovers} requests failed over to the other host")
    if phase.other:
        said.append(f"{phase.other} answered neither 2xx nor 5xx")
    if "drained_after" in facts:
        said.append(f"in-flight counts back to 0 {_seconds(facts['drained_after'])} after the end")
    return "; ".join(said) or "-"


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
