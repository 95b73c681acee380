"""Row c: a hello-world WSGI app, to measure gunicorn + gevent alone (no proxying)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b"x" * 1024
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
