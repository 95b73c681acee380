"""Plain HTTP/1.1 requests for end-to-end tests, each on a new connection (http.client)."""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Mapping

from tests.support.backends import Answer

HOST = "127.0.0.1"


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | Iterable[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """Send one request on a new connection to 127.0.0.1:``port`` and read the answer whole.

    An iterable ``body`` without a Content-Length header goes out chunked.
    """
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def get(
    port: int, path: str, *, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> Answer:
    return request(port, "GET", path, headers=headers, timeout=timeout)
