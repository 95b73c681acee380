"""How fast a change of routing state reaches every worker of a fleet, measured by counting
requests: one keep-alive connection per worker sends a request every ``PACE`` seconds and
records when each started and which server answered; a change written at time T has reached
a worker when no request it started after T goes the old way.

Used by tests/e2e/test_convergence.py (a generous bound) and scripts/convergence_bench.py
(the figure the README states).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.e2e.fleet_harness import WorkerLine

PACE = 0.005  # seconds between two requests of one worker's connection


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic() when the request was sent
    worker: int
    server: str


class Traffic:
    """Requests on every line, each in its own thread, until ``stop``."""

    def __init__(self, lines: Sequence[WorkerLine], pace: float = PACE) -> None:
        self.lines = list(lines)
        self._pace = pace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._run, args=(line,)) for line in self.lines]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15.0)

    def _run(self, line: WorkerLine) -> None:
        while not self._stop.wait(self._pace):
            started = time.monotonic()
            try:
                server = line.get("/").header("X-Server") or "none"
            except Exception as error:  # recorded: the test fails on it
                with self._lock:
                    self.errors.append(f"worker {line.pid}: {error!r}")
                return
            with self._lock:
                self.samples.append(Sample(started, line.pid, server))

    def between(self, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if start < s.started <= end]


def wait_seen(condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.002) -> float:
    """When ``condition`` (a read of Redis) first held, polled every ``step`` seconds: an
    upper bound of when a write another process made took place."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(step)
    raise AssertionError(f"not seen within {timeout} s")


def took_away(traffic: Traffic, server: str, written: float, until: float) -> float:
    """Seconds from ``written`` to the start of the last request ``server`` answered (0: none
    after the write): the change that took ``server`` out had reached every worker then."""
    last = max((s.started for s in traffic.between(written, until) if s.server == server),
               default=written)
    return last - written


def brought_back(traffic: Traffic, server: str, written: float, until: float) -> float:
    """Seconds from ``written`` until every worker had sent a request to ``server`` (the
    change that put it back had reached each of them by then); inf when one never did."""
    later = traffic.between(written, until)
    firsts = []
    for line in traffic.lines:
        starts = [s.started for s in later if s.worker == line.pid and s.server == server]
        firsts.append(min(starts, default=float("inf")))
    return max(firsts) - written
