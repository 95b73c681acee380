"""Collecting one request's log line as it is served (only for frontends that log).

A ``LogNote`` is made when the request reaches the app and travels in the environ (so the
retry loop can count retries without another parameter); each phase stamps it; the line is
written when the response ends (``ProxiedBody.close``) or when geoproxy answers itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from geoproxy.proxy.accesslog import AccessLog
from geoproxy.proxy.httplog import Counters, RequestLog, Timers, capture_field, format_line
from geoproxy.rules.fetch_ssl import TLS_FACTS
from geoproxy.rules.logformat import LogFacts
from geoproxy.rules.txn import ENVIRON_KEY as TXN_KEY
from geoproxy.rules.txn import Txn

ENVIRON_KEY = "geoproxy.log"
# termination state of geoproxy's own answers (HAProxy's first two %tsc letters)
TERMINATION_BY_STATUS = {400: "PR", 403: "PR", 405: "PR", 408: "cR", 500: "PR", 502: "SH",
                         503: "SC", 504: "sH"}  # fmt: skip


# requests of this process being served now: in all, and per frontend, backend and server
# (HAProxy's %ac/%fc/%bc/%sc, counted per process as HAProxy counts them per process)
_open: dict[str, int] = {"": 0}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _enter(key: str) -> None:
    _open[key] = _open.get(key, 0) + 1


def _leave(key: str) -> None:
    _open[key] = _open.get(key, 1) - 1


class LogNote:
    __slots__ = (
        "log", "environ", "frontend", "backend", "server", "started", "accepted", "head_ms",
        "queued", "sending", "connected", "answered", "retries", "redispatched",
        "cookie_request", "cookie_response", "termination", "request_line", "_counted",
        "formatter", "status",
    )  # fmt: skip

    def __init__(self, log: AccessLog, environ: dict[str, Any], frontend: str) -> None:
        self.log = log
        self.environ = environ
        self.frontend = frontend
        self.backend = frontend
        self.server: str | None = None
        self.started = time.monotonic()
        self.accepted: float = environ.get("geoproxy.accepted") or time.time()
        self.head_ms: int = environ.get("geoproxy.head_ms", 0)
        self.queued = self.sending = self.connected = self.answered = -1.0
        self.retries = 0
        self.redispatched = False
        self.cookie_request = "-"
        self.cookie_response = "-"
        self.termination = ""
        self.request_line: str | None = None  # None: the request's own
        # ``log-format``: the request's Txn and the compiled format (None: httplog's line)
        self.formatter: tuple[Txn, Callable[[Txn, LogFacts], str]] | None = None
        self.status = 0  # the status sent, when rules changed the server's
        environ[ENVIRON_KEY] = self
        self._counted = ["", "f:" + frontend]
        for key in self._counted:
            _enter(key)

    def set_backend(self, name: str) -> None:
        self.backend = name
        self._counted.append("b:" + name)
        _enter("b:" + name)

    def set_server(self, name: str) -> None:
        """The server that answers (after retries and redispatches)."""
        if self.server is not None:
            key = f"s:{self.backend}/{self.server}"
            self._counted.remove(key)
            _leave(key)
        self.server = name
        self._counted.append(f"s:{self.backend}/{name}")
        _enter(f"s:{self.backend}/{name}")

    def finish(self, status: int, bytes_sent: int, termination: str | None = None) -> None:
        """Write the line: the response ended (or geoproxy answered) now."""
        end = time.monotonic()
        environ = self.environ
        status = self.status or status

        def since(mark: float, start: float) -> int:
            return _ms(mark - start) if mark >= 0 and start >= 0 else -1

        counters = Counters(
            process=_open[""],
            frontend=_open.get("f:" + self.frontend, 0),
            backend=_open.get("b:" + self.backend, 0),
            server=_open.get(f"s:{self.backend}/{self.server}", 0) if self.server else 0,
            retries=self.retries,
            redispatched=self.redispatched,
        )
        for key in self._counted:
            _leave(key)
        self._counted = []
        queue_start = self.started
        timers = Timers(
            request=self.head_ms,
            queue=since(self.queued, queue_start),
            connect=since(self.connected, self.sending),
            response=since(self.answered, self.connected),
            total=self.head_ms + _ms(end - self.started),
        )
        entry = RequestLog(
            client=(environ.get("REMOTE_ADDR", "-"), int(environ.get("REMOTE_PORT") or 0)),
            accepted=self.accepted,
            # HAProxy's %ft: the frontend's name, then '~' when the connection is TLS
            frontend=self.frontend + "~" if TLS_FACTS in environ else self.frontend,
            backend=self.backend,
            server=self.server,
            timers=timers,
            status=status,
            bytes_sent=bytes_sent,
            termination=termination or self.termination or TERMINATION_BY_STATUS.get(status, "--"),
            cookie_request=self.cookie_request,
            cookie_response=self.cookie_response,
            counters=counters,
            request_line=self.request_line or _request_line(environ),
            captures=_captures(environ, "captures"),
            res_captures=_captures(environ, "res_captures"),
        )
        if environ.get("geoproxy.silent"):
            return
        if self.formatter is not None:
            txn, render = self.formatter
            self.log.write(render(txn, facts_of(entry)))
            return
        self.log.write(format_line(entry))


def _request_line(environ: dict[str, Any]) -> str:
    """The request line as received (rules may have rewritten the environ's)."""
    txn: Txn | None = environ.get(TXN_KEY)
    if txn is not None:
        return " ".join(txn.request_line)
    return (f"{environ.get('REQUEST_METHOD', '')} {environ.get('RAW_URI', '')} "
            f"{environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}")


def _captures(environ: dict[str, Any], which: str) -> tuple[str | None, ...] | None:
    txn: Txn | None = environ.get(TXN_KEY)
    if txn is None:
        return None
    slots: list[str | None] | None = getattr(txn, which)
    return None if slots is None else tuple(slots)


def facts_of(entry: RequestLog) -> LogFacts:
    """The fields of a finished request's httplog entry, for ``log-format`` variables."""
    t, c = entry.timers, entry.counters
    retries = f"+{c.retries}" if c.redispatched else str(c.retries)
    return LogFacts(
        client=entry.client, accepted=entry.accepted, frontend=entry.frontend,
        backend=entry.backend, server=entry.server,
        timers=(t.request, t.queue, t.connect, t.response, t.total), status=entry.status,
        bytes_sent=entry.bytes_sent,
        termination=f"{entry.termination}{entry.cookie_request}{entry.cookie_response}",
        counters=(c.process, c.frontend, c.backend, c.server, retries),
        queues=(entry.server_queue, entry.backend_queue), request_line=entry.request_line,
        captures=capture_field(entry.captures), res_captures=capture_field(entry.res_captures),
    )


def note_of(environ: dict[str, Any]) -> LogNote | None:
    note: LogNote | None = environ.get(ENVIRON_KEY)
    return note
