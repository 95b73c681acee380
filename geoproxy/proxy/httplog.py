"""One request, one log line, in the shape of HAProxy's ``option httplog`` (pure).

HAProxy 2.6's default HTTP format:

    %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
    %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r                             (one line)

``%hr``/``%hs`` (``{...}``, the captured headers) and their space exist only when the
frontend captures request or response headers.

Timers are milliseconds, -1 where the phase never happened (HAProxy's convention); ``%rc`` is the
retry count, prefixed with ``+`` when the request was redispatched; ``%tsc`` is the termination
state (who ended the session, in which phase) followed by the persistence cookie flags.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Timers:
    """HAProxy's timers, milliseconds (-1: not reached)."""

    request: int  # TR: receiving the request head
    queue: int  # Tw: waiting in queues
    connect: int  # Tc: connecting to the server
    response: int  # Tr: waiting for the server's response head
    total: int  # Ta: the whole request, until the last byte went out


@dataclass(frozen=True, slots=True)
class Counters:
    """Connections at log time: the process (ac), the frontend (fc), the backend (bc), the
    server (sc); ``retries`` and whether the request was redispatched."""

    process: int = 0
    frontend: int = 0
    backend: int = 0
    server: int = 0
    retries: int = 0
    redispatched: bool = False


@dataclass(frozen=True, slots=True)
class RequestLog:
    client: tuple[str, int]
    accepted: float  # epoch seconds the request began
    frontend: str
    backend: str
    server: str | None  # None: no server was chosen (<NOSRV>)
    timers: Timers
    status: int
    bytes_sent: int
    termination: str  # two letters: "--" normal, "SC", "sH", "sQ", "cR", "CD", ...
    cookie_request: str = "-"  # persistence cookie flag of the request (N I D V E O U -)
    cookie_response: str = "-"  # of the response (N I U P R D -)
    counters: Counters = Counters()
    server_queue: int = 0
    backend_queue: int = 0
    request_line: str = ""
    # ``capture request|response header`` values, None when the frontend captures nothing
    captures: tuple[str | None, ...] | None = None
    res_captures: tuple[str | None, ...] | None = None


def accept_date(epoch: float) -> str:
    """``%tr``: ``25/Nov/2026:14:24:07.123`` in local time, as HAProxy prints it."""
    seconds, millis = divmod(round(epoch * 1000), 1000)
    local = time.localtime(seconds)
    return (
        f"{local.tm_mday:02d}/{_MONTHS[local.tm_mon - 1]}/{local.tm_year}:"
        f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}.{millis:03d}"
    )


def _quoted(text: str) -> str:
    """``%{+Q}r``: the request line in double quotes, quotes and controls escaped as HAProxy
    escapes them (``#XX``)."""
    escaped = "".join(
        f"#{ord(char):02X}" if char in '"#' or ord(char) < 32 or ord(char) == 127 else char
        for char in text
    )
    return f'"{escaped}"'


def capture_field(values: tuple[str | None, ...] | None) -> str:
    """``%hr``/``%hs``: captured values as ``{a|b}``, escaped as HAProxy escapes them
    (``"``, ``#``, ``{``, ``|``, ``}`` and control characters as ``#XX``); "" without
    captures."""
    if values is None:
        return ""
    return "{" + "|".join(
        "".join(f"#{ord(c):02X}" if c in '"#{|}' or ord(c) < 32 or ord(c) == 127 else c
                for c in value or "")
        for value in values) + "}"


def format_line(entry: RequestLog) -> str:
    t = entry.timers
    c = entry.counters
    retries = f"+{c.retries}" if c.redispatched else str(c.retries)
    return (
        f"{entry.client[0]}:{entry.client[1]} [{accept_date(entry.accepted)}] {entry.frontend} "
        f"{entry.backend}/{entry.server or '<NOSRV>'} "
        f"{t.request}/{t.queue}/{t.connect}/{t.response}/{t.total} {entry.status} "
        f"{entry.bytes_sent} - - {entry.termination}{entry.cookie_request}"
        f"{entry.cookie_response} {c.process}/{c.frontend}/{c.backend}/{c.server}/{retries} "
        f"{entry.server_queue}/{entry.backend_queue} "
        f"{_spaced(capture_field(entry.captures))}{_spaced(capture_field(entry.res_captures))}"
        f"{_quoted(entry.request_line)}"
    )


def _spaced(field: str) -> str:
    return field + " " if field else ""
