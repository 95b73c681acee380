"""The WSGI environ of one request, shared by the HTTP/1.1 loop and the HTTP/2 streams.

Rules:
1. The environ starts from the connection's (``base``: addresses, TLS facts, stick counters
   of its ``tcp-request connection`` rules), then the request's header fields (WSGI keys).
2. ``RAW_URI`` is the target as sent; ``PATH_INFO`` its path, percent-decoded as latin-1 (an
   absolute-form target's path: scheme and authority never route anything); ``QUERY_STRING``
   what follows ``?``.
3. ``geoproxy.accepted`` is when the request began (the log's accept date), and
   ``geoproxy.head_ms`` how long its head took to arrive (the log's TR).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote


def request_environ(
    base: dict[str, Any],
    fields: dict[str, str],
    method: str,
    target: str,
    protocol: str,
    body: Any,
    began: tuple[float, float],
) -> dict[str, Any]:
    """The environ of one request; ``began`` is (monotonic, wall clock) when it began."""
    environ = base.copy()
    environ.update(fields)
    path, _, query = target.partition("?")
    if path[:1] != "/" and path != "*":
        path = "/" + path.partition("://")[2].partition("/")[2]
    environ["REQUEST_METHOD"] = method
    environ["RAW_URI"] = target
    environ["PATH_INFO"] = unquote(path, "latin-1") if "%" in path else path
    environ["QUERY_STRING"] = query
    environ["SERVER_PROTOCOL"] = protocol
    environ["wsgi.input"] = body
    environ["geoproxy.accepted"] = began[1]
    environ["geoproxy.head_ms"] = int((time.monotonic() - began[0]) * 1000)
    return environ
