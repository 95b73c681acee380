"""A bounded traffic loop through a proxy: a few client threads sending GETs, one after the
other each, recording every request's outcome and latency, until stopped or ``max_seconds``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tests.support.http_client import get


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request: when it started (monotonic seconds), how long it took, its status (None
    when it got no HTTP answer) and the error it met."""

    started: float
    latency: float
    status: int | None
    error: str = ""


class ClientThreads:
    """``clients`` threads, each running ``_loop(index)`` until ``stop`` is set or
    ``max_seconds`` have passed (``_running``); a context manager that starts them on entry and
    stops them on exit, waiting at most ``join_timeout`` seconds for each."""

    def __init__(self, clients: int, max_seconds: float, join_timeout: float) -> None:
        self._deadline = time.monotonic() + max_seconds
        self._join_timeout = join_timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"client-{i}", daemon=True)
            for i in range(clients)
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._join()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._join_timeout)

    def _loop(self, index: int) -> None:
        raise NotImplementedError


class Traffic(ClientThreads):
    """``with Traffic(port) as traffic: ...``: ``clients`` threads send ``path`` in a loop."""

    def __init__(
        self,
        port: int,
        path: str = "/",
        *,
        clients: int = 2,
        max_seconds: float = 60.0,
        timeout: float = 10.0,
        pause: float = 0.005,
    ) -> None:
        super().__init__(clients, max_seconds, timeout + 5)
        self._port = port
        self._path = path
        self._timeout = timeout
        self._pause = pause
        self._outcomes: list[Outcome] = []

    def stop(self) -> list[Outcome]:
        self._join()
        return self.outcomes()

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        with self._lock:
            return [outcome for outcome in self._outcomes if outcome.started >= since]

    def wait_for(self, count: int, since: float, timeout: float = 10.0) -> None:
        """Return once ``count`` requests started after ``since`` have finished."""
        deadline = time.monotonic() + timeout
        while len(self.outcomes(since)) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"fewer than {count} requests in {timeout:g}s")
            time.sleep(0.02)

    def _loop(self, index: int) -> None:
        while self._running():
            started = time.monotonic()
            try:
                status: int | None = get(self._port, self._path, timeout=self._timeout).status
                error = ""
            except OSError as failure:
                status, error = None, repr(failure)
            outcome = Outcome(started, time.monotonic() - started, status, error)
            with self._lock:
                self._outcomes.append(outcome)
            self._stop.wait(self._pause)


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    """The requests that did not get a 200."""
    return [outcome for outcome in outcomes if outcome.status != 200]
