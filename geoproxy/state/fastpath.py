"""The acquire round trip without redis-py's per-call machinery.

redis-py costs about 170 µs of CPU per call more than the call itself under gevent (a readiness
poll on every connection taken from its pool, retry wrappers, response callbacks): on a request
path that makes exactly one Redis call, that was a third of geoproxy's CPU per request. This
module sends that one call on raw sockets, with hiredis (which redis-py already depends on here)
packing the command and parsing the reply. In a gevent worker (``geoproxy.watchdog`` running)
every greenlet's calls share one pipelined connection (``geoproxy.state.pipeline``): the calls
of one turn of the hub leave in one write and their replies come back in one read, on both
sides (bench_worker: worker 250 -> 180 us, Redis 55 -> 24 us per request). Elsewhere (the
master, tools, tests) calls take connections from a LIFO pool per process.

Rules:
1. Only single-server URLs (``redis://``, ``unix://``) take this path; anything else (TLS,
   Sentinel, Cluster) returns None from ``fast_caller`` and the caller stays on redis-py.
2. Failures are redis-py's exception types, so callers handle one family: a socket error or
   timeout is ``ConnectionError``/``TimeoutError`` (the connection is dropped, never reused
   half-read); a ``NOSCRIPT`` reply is ``NoScriptError``; any other error reply is
   ``ResponseError``.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
import redis
from gevent.lock import Semaphore

from geoproxy import watchdog
from geoproxy.netio import sendall, wait_readable
from geoproxy.state.pipeline import Pipeline

_RECV = 65536


class _Connection:
    """One connection; each call (send and reply) is bounded by the caller's timeout: the
    socket's own, or in a worker ``geoproxy.watchdog``'s (no gevent timer per wait)."""

    __slots__ = ("sock", "reader", "timeout", "_guard")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = hiredis.Reader(encoding="utf-8")
        self.timeout = sock.gettimeout()
        self._guard = watchdog.new_guard()
        if self._guard is not None:
            sock.settimeout(None)

    def call(self, command: bytes) -> Any:
        guard = self._guard
        if guard is None:
            return self._call(command)
        guard.arm(self.timeout)
        try:
            return self._call(command)
        finally:
            guard.disarm()

    def _call(self, command: bytes) -> Any:
        sendall(self.sock, command)
        wait_readable(self.sock)  # Redis cannot have answered yet
        reader = self.reader  # empty: each call reads exactly its one reply
        while True:
            data = self.sock.recv(_RECV)
            if not data:
                raise redis.exceptions.ConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
            if reply is not False:
                return reply


class FastCaller:
    """Sends EVALSHA on a pool of raw connections to one Redis server."""

    def __init__(
        self,
        address: tuple[str, int] | str,
        *,
        db: int,
        username: str | None,
        password: str | None,
        timeout: float,
        max_idle: int = 64,
    ) -> None:
        self._address = address
        self._handshake = []
        if password is not None:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            self._handshake.append(hiredis.pack_command(auth))  # type: ignore[arg-type]
        if db:
            self._handshake.append(hiredis.pack_command(("SELECT", db)))  # type: ignore[arg-type]
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._max_idle = max_idle
        self._pipeline: Pipeline | None = None
        self._connecting = Semaphore()

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        command = hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
        if watchdog.active() is not None:
            reply = self._pipelined(command)
        else:
            reply = self._pooled(command)
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            if message.startswith("NOSCRIPT"):
                raise redis.exceptions.NoScriptError(message)
            raise redis.exceptions.ResponseError(message)
        return reply

    def _pipelined(self, command: bytes) -> Any:
        """In a gevent worker: every greenlet's calls share one pipelined connection."""
        pipeline = self._pipeline
        if pipeline is None or pipeline.broken is not None:
            with self._connecting:  # one connection, however many greenlets find none
                pipeline = self._pipeline
                if pipeline is None or pipeline.broken is not None:
                    pipeline = self._pipeline = Pipeline(self._connect().sock, self._timeout)
        try:
            return pipeline.call(command)
        except TimeoutError as error:
            raise redis.exceptions.TimeoutError(f"Redis did not answer in time: {error}") from None

    def _pooled(self, command: bytes) -> Any:
        conn = self._idle.pop() if self._idle else self._connect()
        try:
            reply = conn.call(command)
        except TimeoutError as error:
            conn.sock.close()
            raise redis.exceptions.TimeoutError(f"Redis did not answer in time: {error}") from None
        except OSError as error:
            conn.sock.close()
            raise redis.exceptions.ConnectionError(f"Redis connection failed: {error}") from None
        except BaseException:
            conn.sock.close()
            raise
        if len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.sock.close()
        return reply

    def _connect(self) -> _Connection:
        try:
            if isinstance(self._address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._timeout)
                sock.connect(self._address)
            else:
                sock = socket.create_connection(self._address, timeout=self._timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock)
            for command in self._handshake:
                reply = conn.call(command)
                if isinstance(reply, hiredis.ReplyError):
                    sock.close()
                    raise redis.exceptions.AuthenticationError(str(reply))
        except TimeoutError as error:
            raise redis.exceptions.TimeoutError(f"Redis did not answer in time: {error}") from None
        except OSError as error:
            raise redis.exceptions.ConnectionError(f"cannot connect to Redis: {error}") from None
        return conn

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        while self._idle:
            self._idle.pop().sock.close()


def fast_caller(url: str, timeout: float) -> FastCaller | None:
    """A ``FastCaller`` for ``url``, or None when the URL needs redis-py (rule 1)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    db_text = query.get("db", [""])[0]
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    if parts.scheme == "unix":
        db = int(db_text or 0)
        return FastCaller(parts.path, db=db, username=username, password=password, timeout=timeout)
    if parts.scheme == "redis":
        path_db = parts.path.lstrip("/")
        db = int(db_text or path_db or 0)
        address = (parts.hostname or "localhost", parts.port or 6379)
        return FastCaller(address, db=db, username=username, password=password, timeout=timeout)
    return None
