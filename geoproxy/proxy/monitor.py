"""``monitor-uri`` and ``monitor fail``: the proxy answers a load balancer's probe itself.

Rules (HAProxy 2.6's ``http_wait_for_request()``, checked against haproxy 2.6):
1. A request whose URI, as sent (query string included), is exactly the ``monitor-uri`` is
   answered before anything else happens to it: no backend, no stats page, no log line.
2. The answer is HAProxy's page for 200 ("Service ready."), or for 503 when any ``monitor
   fail`` condition holds; an ``errorfile`` for that status replaces it, as in HAProxy.
"""

from __future__ import annotations

from typing import Any

from geoproxy.config.model import Monitor
from geoproxy.proxy.acl import Predicate, compile_condition

Environ = dict[str, Any]


class MonitorRule:
    """One frontend's monitor URI and its fail conditions, compiled once."""

    __slots__ = ("uri", "_fail")

    def __init__(self, monitor: Monitor) -> None:
        self.uri = monitor.uri
        self._fail: tuple[Predicate, ...] = tuple(compile_condition(c) for c in monitor.fail)

    def matches(self, environ: Environ) -> bool:
        return environ.get("RAW_URI") == self.uri

    def status(self, environ: Environ) -> int:
        """200, or 503 when a ``monitor fail`` condition holds."""
        return 503 if any(fails(environ) for fails in self._fail) else 200
