"""One TCP connection, one log line, in the shape of HAProxy's ``option tcplog`` (pure).

HAProxy 2.6's TCP format:

    %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq

``%Tw`` is the time spent in queues, ``%Tc`` the time to connect to the server, ``%Tt`` the
whole session (ms; -1 for a phase never reached), ``%B`` the bytes sent to the client, ``%ts``
the termination state (two letters: who ended the session, in which phase), then the
connection counts and retries (``+N`` when redispatched) and the queue positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoproxy.proxy.httplog import Counters, accept_date


@dataclass(frozen=True, slots=True)
class TcpLog:
    client: tuple[str, int]
    accepted: float  # epoch seconds the connection was accepted
    frontend: str
    backend: str
    server: str | None  # None: no server was chosen (<NOSRV>)
    queue_ms: int  # Tw
    connect_ms: int  # Tc
    total_ms: int  # Tt
    bytes_sent: int  # to the client
    termination: str  # "--", "CD", "SD", "cD", "sD", "SC", "sC", "sQ", "PR", "DD" ...
    counters: Counters = Counters()
    server_queue: int = 0
    backend_queue: int = 0


def format_tcp_line(entry: TcpLog) -> str:
    c = entry.counters
    retries = f"+{c.retries}" if c.redispatched else str(c.retries)
    return (
        f"{entry.client[0]}:{entry.client[1]} [{accept_date(entry.accepted)}] {entry.frontend} "
        f"{entry.backend}/{entry.server or '<NOSRV>'} "
        f"{entry.queue_ms}/{entry.connect_ms}/{entry.total_ms} {entry.bytes_sent} "
        f"{entry.termination} {c.process}/{c.frontend}/{c.backend}/{c.server}/{retries} "
        f"{entry.server_queue}/{entry.backend_queue}"
    )
