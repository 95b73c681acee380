"""Steady, bounded traffic through several proxy hosts, as clients behind a DNS name with one
address per host would send it; every request accounted for exactly once.

Rules:
- ``clients`` threads each keep one keep-alive connection per host and send ``path`` to the
  hosts in turn (thread i starts at host i mod N), pausing ``pause`` seconds between two
  requests: a fixed concurrency, a bounded rate. Each socket operation has a ``timeout``.
- A keep-alive connection is checked before it is reused (one zero-timeout poll, as urllib3
  does): one the host closed while it sat idle is closed and a new one opened; the request has
  not been written yet, so this is no failure.
- Failover, as a client with several addresses does: when opening a NEW connection to a host
  fails (refused, timed out), the request goes to the next host instead; it still counts once,
  marked ``failover``. Nothing is ever retried once a byte of the request was written.
- Each request gets exactly one ``Kind``: ``ANSWERED`` (a status line and the whole body: its
  ``status`` tells 2xx from 5xx), ``CUT`` (a status line, then the body ended early or timed
  out), ``LOST`` (no status line at all: the connection died or timed out after the request was
  written, or no host accepted a connection).
"""

from __future__ import annotations

import enum
import http.client
import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tests.support.traffic import ClientThreads

HOST = "127.0.0.1"


class Kind(enum.Enum):
    ANSWERED = "answered"
    CUT = "cut"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Request:
    """One request: when it started and ended (monotonic seconds), the host index that got it,
    what came of it, the status (0 without a status line), the server that answered
    (``X-Server``), whether it failed over from another host, and the error it met."""

    started: float
    ended: float
    host: int
    kind: Kind
    status: int = 0
    server: str = ""
    failover: bool = False
    error: str = ""

    @property
    def is_2xx(self) -> bool:
        return self.kind is Kind.ANSWERED and 200 <= self.status < 300

    @property
    def is_5xx(self) -> bool:
        return self.kind is Kind.ANSWERED and 500 <= self.status < 600


class FailoverTraffic(ClientThreads):
    """``with FailoverTraffic([port_a, port_b]) as traffic: ...`` (see the module rules)."""

    def __init__(
        self,
        ports: Sequence[int],
        path: str = "/",
        *,
        clients: int = 8,
        pause: float = 0.01,
        timeout: float = 10.0,
        max_seconds: float = 600.0,
    ) -> None:
        # a request waits on two connects (one per host), a send and a receive at the most
        super().__init__(clients, max_seconds, 4 * timeout + 5)
        self._ports = list(ports)
        self._path = path
        self._pause = pause
        self._timeout = timeout
        self._done: list[Request] = []

    def stop(self) -> list[Request]:
        """Stop sending; wait (bounded) for the requests under way; return every request."""
        self._join()
        return self.requests()

    def requests(self, since: float = 0.0, until: float = float("inf")) -> list[Request]:
        """The finished requests that started in [since, until)."""
        with self._lock:
            return [r for r in self._done if since <= r.started < until]

    # -- one client ----------------------------------------------------------------------------

    def _loop(self, index: int) -> None:
        connections: list[http.client.HTTPConnection | None] = [None] * len(self._ports)
        turn = index
        try:
            while self._running():
                request = self._send(connections, turn % len(self._ports))
                with self._lock:
                    self._done.append(request)
                turn += 1
                self._stop.wait(self._pause)
        finally:
            for connection in connections:
                if connection is not None:
                    connection.close()

    def _send(self, connections: list[http.client.HTTPConnection | None], first: int) -> Request:
        started = time.monotonic()
        count = len(self._ports)
        for attempt in range(count):
            host = (first + attempt) % count
            connection = self._ready_connection(connections, host)
            if connection is not None:
                return self._exchange(connection, host, started, failover=attempt > 0)
        return Request(started, time.monotonic(), first, Kind.LOST, error="no host accepted")

    def _ready_connection(
        self, connections: list[http.client.HTTPConnection | None], host: int
    ) -> http.client.HTTPConnection | None:
        """A connection to ``host`` that is open as far as can be known without writing, or
        None when a new one could not be opened."""
        connection = connections[host]
        if connection is not None and connection.sock is not None:
            if not _was_dropped(connection.sock):
                return connection
            connection.close()
        connection = http.client.HTTPConnection(HOST, self._ports[host], timeout=self._timeout)
        try:
            connection.connect()
        except OSError:
            connection.close()
            connections[host] = None
            return None
        connections[host] = connection
        return connection

    def _exchange(
        self, connection: http.client.HTTPConnection, host: int, started: float, failover: bool
    ) -> Request:
        try:
            connection.request("GET", self._path)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as failure:
            connection.close()
            ended = time.monotonic()
            return Request(started, ended, host, Kind.LOST, 0, "", failover, repr(failure))
        server = response.getheader("X-Server") or ""
        try:
            response.read()
        except (OSError, http.client.HTTPException) as failure:
            connection.close()
            ended = time.monotonic()
            status, error = response.status, repr(failure)
            return Request(started, ended, host, Kind.CUT, status, server, failover, error)
        if response.will_close:
            connection.close()
        ended = time.monotonic()
        return Request(started, ended, host, Kind.ANSWERED, response.status, server, failover)


def _was_dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive connection has input (a close, a reset, stray bytes): then it
    cannot carry the next request."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)
