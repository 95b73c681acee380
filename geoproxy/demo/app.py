"""The demo application server's WSGI app: endpoints for the demo, the tests and the benchmark.

Endpoints:
- ``/`` and any unknown path: 200 ``served by NAME``.
- ``/slow?ms=N``: the same after N milliseconds.
- ``/status/N`` (200..599): that status; no body for 204 and 304.
- ``/bytes/N[?chunked=1]``: N bytes (``expected_bytes(N)``), with Content-Length or chunked.
- ``/echo``: reads the request body as it streams in; answers ``{"length", "sha256"}``.
- ``/headers``: the request's header fields as received: ``[[name, value], ...]`` in order,
  names in their original case, values without the blanks around them.
- ``/set-cookie?name=N&value=V&path=P``: answers with ``Set-Cookie: N=V; Path=P``.
- ``/ws``: a WebSocket echo (``geoproxy.demo.websocket``, run by the server on its
  connection); a request there that is no WebSocket handshake gets 426.
- ``/health``, ``/health/fail``, ``/health/ok``; ``/stats`` and ``/stats/reset`` (JSON).

Rules:
- Every response the app makes carries ``X-Server: NAME``.
- Nothing is buffered whole: ``/bytes`` streams out, ``/echo`` streams in (64 KiB at a time).
- Health checks are requests to ``/health`` and any ``OPTIONS`` request (HAProxy's default
  ``option httpchk`` probe); both answer 200, or 503 after ``/health/fail`` until
  ``/health/ok``. They count in ``health_checks``, not in ``requests``.
- ``/stats`` and ``/stats/reset`` are not counted anywhere, so reading the counters does not
  change them. ``connections`` counts the connections that carried at least one counted request
  or health check; ``accepted`` counts every TCP connection accepted.
- The app runs in one gevent process: counters are plain integers, no lock needed.
- ``/`` is the hot path of a benchmark: one dict miss, two prefix tests, a prebuilt answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs

import gevent

CHUNK = 64 * 1024
_ALPHABET = (string.ascii_letters + string.digits).encode()
# The /bytes pattern: a block that tests can rebuild with ``expected_bytes``.
_BLOCK = (_ALPHABET * (CHUNK // len(_ALPHABET) + 1))[:CHUNK]

Environ = dict[str, Any]
Headers = list[tuple[str, str]]
StartResponse = Callable[..., Any]

CONNECTION_KEY = "geoproxy.demo.connection"


class Connection(Protocol):
    """What the app needs from the server's per-connection handler."""

    carried_traffic: bool

    def raw_headers(self) -> list[tuple[str, str]]:
        """The request's header fields in order, names in their original case."""
        ...


@dataclass(slots=True)
class Stats:
    """Counters since start or since the last ``/stats/reset``."""

    accepted: int = 0
    connections: int = 0
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    health_checks: int = 0

    def reset(self) -> None:
        """Zero every counter but the live ``in_flight``."""
        self.accepted = self.connections = self.requests = self.health_checks = 0
        self.max_in_flight = self.in_flight


def expected_bytes(size: int) -> bytes:
    """The body ``/bytes/SIZE`` answers with."""
    return (_BLOCK * (size // CHUNK + 1))[:size]


class _Flight:
    """A streamed body: the request stays in flight until the server closes it (after the last
    chunk, or when the client went away)."""

    __slots__ = ("_chunks", "_stats")

    def __init__(self, chunks: Iterator[bytes], stats: Stats) -> None:
        self._chunks: Iterator[bytes] | None = chunks
        self._stats = stats

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks if self._chunks is not None else iter(())

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks = None
            self._stats.in_flight -= 1


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


class DemoApp:
    """The WSGI app of one demo backend named ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = Stats()
        self.healthy = True
        self._plain = ("Content-Type", "text/plain")
        self._server = ("X-Server", name)
        self._hello = f"served by {name}".encode()
        self._hello_headers = [
            self._plain,
            ("Content-Length", str(len(self._hello))),
            self._server,
        ]
        self._routes: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
            "/slow": self._slow,
            "/echo": self._echo,
            "/headers": self._headers,
            "/set-cookie": self._set_cookie,
            "/ws": self._not_websocket,
            "/health/fail": self._health_fail,
            "/health/ok": self._health_ok,
        }
        self._uncounted = {"/stats": self._stats, "/stats/reset": self._stats_reset}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ["PATH_INFO"]
        uncounted = self._uncounted.get(path)
        if uncounted is not None:
            return uncounted(environ, start_response)
        self._count_connection(environ)
        if path == "/health" or environ["REQUEST_METHOD"] == "OPTIONS":
            self.stats.health_checks += 1
            return self._health(environ, start_response)
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        try:
            answer = self._dispatch(path, environ, start_response)
        except BaseException:
            stats.in_flight -= 1
            raise
        if not isinstance(answer, _Flight):
            stats.in_flight -= 1
        return answer

    def _dispatch(self, path: str, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        route = self._routes.get(path)
        if route is not None:
            return route(environ, start)
        if path.startswith("/status/"):
            return self._status(path[len("/status/") :], environ, start)
        if path.startswith("/bytes/"):
            return self._bytes(path[len("/bytes/") :], environ, start)
        start("200 OK", self._hello_headers)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [self._hello]

    @contextlib.contextmanager
    def session(self, environ: Environ) -> Iterator[None]:
        """A WebSocket session, counted as a request in flight while it lasts."""
        self._count_connection(environ)
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            yield
        finally:
            stats.in_flight -= 1

    def _count_connection(self, environ: Environ) -> None:
        connection: Connection | None = environ.get(CONNECTION_KEY)
        if connection is not None and not connection.carried_traffic:
            connection.carried_traffic = True
            self.stats.connections += 1

    # -- answers --------------------------------------------------------------------------

    def _answer(
        self,
        start: StartResponse,
        status: str,
        body: bytes,
        content_type: str = "text/plain",
        extra: Headers | None = None,
    ) -> list[bytes]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        headers.append(self._server)
        if extra:
            headers.extend(extra)
        start(status, headers)
        return [body]

    def _json(self, start: StartResponse, value: object) -> list[bytes]:
        return self._answer(start, "200 OK", json.dumps(value).encode(), "application/json")

    def _bad_request(self, start: StartResponse, why: str) -> list[bytes]:
        return self._answer(start, "400 Bad Request", f"bad request: {why}\n".encode())

    # -- endpoints ------------------------------------------------------------------------

    def _slow(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ["QUERY_STRING"])
        try:
            millis = float(query.get("ms", ["0"])[0])
        except ValueError:
            return self._bad_request(start, "ms must be a number")
        gevent.sleep(max(millis, 0.0) / 1000.0)
        return self._answer(start, "200 OK", f"served by {self.name} after {millis:g} ms".encode())

    def _status(self, code_text: str, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        if not code_text.isdigit() or not 200 <= int(code_text) <= 599:
            return self._bad_request(start, "status must be 200..599")
        code = int(code_text)
        if code in (204, 304):
            start(_status_line(code), [self._server])
            return []
        return self._answer(start, _status_line(code), f"status {code}\n".encode())

    def _bytes(self, size_text: str, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        if not size_text.isdigit():
            return self._bad_request(start, "size must be a non-negative integer")
        size = int(size_text)
        chunked = parse_qs(environ["QUERY_STRING"]).get("chunked", ["0"])[0] == "1"
        headers: Headers = [("Content-Type", "application/octet-stream"), self._server]
        if not chunked:
            headers.append(("Content-Length", str(size)))
        start("200 OK", headers)
        if environ["REQUEST_METHOD"] == "HEAD" or size == 0:
            return []
        return _Flight(self._blocks(size), self.stats)

    @staticmethod
    def _blocks(size: int) -> Iterator[bytes]:
        whole, rest = divmod(size, CHUNK)
        for _ in range(whole):
            yield _BLOCK
        if rest:
            yield _BLOCK[:rest]

    def _echo(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        digest = hashlib.sha256()
        length = 0
        body = environ["wsgi.input"]
        while chunk := body.read(CHUNK):
            digest.update(chunk)
            length += len(chunk)
        return self._json(start, {"length": length, "sha256": digest.hexdigest()})

    def _headers(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        connection: Connection | None = environ.get(CONNECTION_KEY)
        pairs = [] if connection is None else connection.raw_headers()
        return self._json(start, [[name, value] for name, value in pairs])

    def _set_cookie(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ["QUERY_STRING"], keep_blank_values=True)
        name = query.get("name", ["demo"])[0]
        value = query.get("value", [self.name])[0]
        cookie = f"{name}={value}"
        if "path" in query:
            cookie += f"; Path={query['path'][0]}"
        if any(c in cookie for c in "\r\n"):
            return self._bad_request(start, "no CR or LF in a cookie")
        return self._answer(start, "200 OK", b"cookie set\n", extra=[("Set-Cookie", cookie)])

    def _not_websocket(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        extra = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        body = b"a WebSocket handshake is expected here\n"
        return self._answer(start, "426 Upgrade Required", body, extra=extra)

    def _health(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        if self.healthy:
            return self._answer(start, "200 OK", b"ok\n")
        return self._answer(start, "503 Service Unavailable", b"failing\n")

    def _health_fail(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        self.healthy = False
        return self._answer(start, "200 OK", b"health checks will now fail\n")

    def _health_ok(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        self.healthy = True
        return self._answer(start, "200 OK", b"health checks will now pass\n")

    def _stats(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        return self._json(start, {"name": self.name, **asdict(self.stats)})

    def _stats_reset(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        self.stats.reset()
        return self._stats(environ, start)
