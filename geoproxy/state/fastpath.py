"""The acquire round trip without redis-py's per-call machinery.

redis-py costs about 170 µs of CPU per call more than the call itself under gevent (a readiness
poll on every connection taken from its pool, retry wrappers, response callbacks): on a request
path that makes exactly one Redis call, that was a third of geoproxy's CPU per request. This
module sends that one call on raw sockets, with hiredis (which redis-py already depends on here)
packing the command and parsing the reply. In a gevent worker (``geoproxy.watchdog`` running)
every greenlet's calls share one pipelined connection (``geoproxy.state.pipeline``): the calls
of one turn of the hub leave in one write and their replies come back in one read, on both
sides (bench_worker: worker 250 -> 180 us, Redis 55 -> 24 us per request). Elsewhere (the
master, tools, tests) and over TLS, calls take connections from a LIFO pool per process.

Rules:
1. Only single-server URLs (``redis://``, ``rediss://``, ``unix://``) take this path, read by
   redis-py's own URL parser (credentials, database, TLS options), so both paths reach the same
   server the same way. Sentinel and Cluster URLs, and TLS options beyond the common ones
   (``_TLS_OPTIONS``), return None from ``fast_caller``: the caller stays on redis-py.
2. Failures are redis-py's exception types, so callers handle one family: a socket error or
   timeout is ``ConnectionError``/``TimeoutError`` (the connection is dropped, never reused
   half-read); an error reply is the type redis-py would raise for it (``NOSCRIPT``,
   ``LOADING``, ``READONLY``...), ``BUSY`` (a script holds the server) is ``RedisBusyError``
   (a ``TimeoutError``), and any other is ``ResponseError``.
3. A pooled connection found broken (Redis restarted, or closed it while idle) empties the pool,
   and the call is sent once more on a fresh connection: a dead connection never costs a
   request, nor marks a Redis that is back as unreachable. (A timeout is not retried: the
   server is slow, not gone.) A broken shared pipeline is replaced at the next call.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
from gevent.lock import Semaphore
from redis.connection import SSLConnection, UnixDomainSocketConnection

from geoproxy import watchdog
from geoproxy.netio import sendall, wait_readable
from geoproxy.state.connect import RedisBusyError, parse_url, to_bool
from geoproxy.state.pipeline import Pipeline

_RECV = 65536
_MULTI = hiredis.pack_command(("MULTI",))
_EXEC = hiredis.pack_command(("EXEC",))

# The TLS options of a URL this module applies itself (as redis-py's SSLConnection does).
_TLS_OPTIONS = frozenset(
    {
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_check_hostname",
    }
)
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

# Error replies and the redis-py exception they become (rule 2).
_REPLY_ERRORS: dict[str, type[redis.exceptions.RedisError]] = {
    "NOSCRIPT": redis.exceptions.NoScriptError,
    "LOADING": redis.exceptions.BusyLoadingError,
    "READONLY": redis.exceptions.ReadOnlyError,
    "MASTERDOWN": redis.exceptions.MasterDownError,
    "BUSY": RedisBusyError,
    "NOAUTH": redis.exceptions.AuthenticationError,
    "WRONGPASS": redis.exceptions.AuthenticationError,
}


def reply_error(message: str) -> redis.exceptions.RedisError:
    """The redis-py exception for an error reply (rule 2)."""
    return _REPLY_ERRORS.get(message.split(" ", 1)[0], redis.exceptions.ResponseError)(message)


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

    def call(self, command: bytes, count: int = 1) -> Any:
        """The reply to ``command`` (``count`` packed commands: the list of their replies)."""
        guard = self._guard
        if guard is None:
            return self._call(command, count)
        guard.arm(self.timeout)
        try:
            return self._call(command, count)
        finally:
            guard.disarm()

    def _call(self, command: bytes, count: int) -> Any:
        sendall(self.sock, command)
        wait_readable(self.sock)  # Redis cannot have answered yet
        reader = self.reader  # empty: each call reads exactly its replies
        replies: list[Any] = []
        while True:
            data = self.sock.recv(_RECV)
            if not data:
                raise redis.exceptions.ConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
            while reply is not False:
                if count == 1:
                    return reply
                replies.append(reply)
                if len(replies) == count:
                    return replies
                reply = reader.gets()


class _Broken(Exception):
    """The connection failed (reset, closed) before a reply came."""


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
        tls: ssl.SSLContext | None = None,
        max_idle: int = 64,
    ) -> None:
        self._address = address
        self._tls = tls
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
        reply = self._send_packed(command, 1)
        if isinstance(reply, hiredis.ReplyError):
            raise reply_error(str(reply))
        return reply

    def transaction(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run ``commands`` in one MULTI/EXEC, in one round trip; returns their replies."""
        packed = b"".join(
            [_MULTI, *(hiredis.pack_command(tuple(command)) for command in commands), _EXEC]
        )
        replies = self._send_packed(packed, len(commands) + 2)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise reply_error(str(reply))
        executed = replies[-1]
        if not isinstance(executed, list):  # EXEC answered nil: the transaction was discarded
            raise redis.exceptions.ResponseError("Redis discarded the transaction")
        for reply in executed:
            if isinstance(reply, hiredis.ReplyError):
                raise reply_error(str(reply))
        return executed

    def _send_packed(self, command: bytes, count: int) -> Any:
        if self._tls is None and watchdog.active() is not None:
            return self._pipelined(command, count)
        return self._pooled(command, count)

    def _pipelined(self, command: bytes, count: int) -> Any:
        """In a gevent worker: every greenlet's calls share one pipelined connection (a TLS
        socket cannot be handed to the hub's raw watchers, so TLS stays pooled)."""
        pipeline = self._pipeline
        if pipeline is None or pipeline.broken is not None:
            with self._connecting:  # one connection, however many greenlets find none
                pipeline = self._pipeline
                if pipeline is None or pipeline.broken is not None:
                    pipeline = self._pipeline = Pipeline(self._connect().sock, self._timeout)
        try:
            return pipeline.call(command, count)
        except TimeoutError as error:
            raise redis.exceptions.TimeoutError(f"Redis did not answer in time: {error}") from None

    def _pooled(self, command: bytes, count: int) -> Any:
        if self._idle:
            try:
                reply = self._send(self._idle.pop(), command, count)
            except _Broken:
                # Redis restarted or dropped idle clients: every pooled connection is as dead
                # as this one, and a fresh one may well work (rule 3).
                self.close()
                reply = self._send_fresh(command, count)
        else:
            reply = self._send_fresh(command, count)
        return reply

    def _send_fresh(self, command: bytes, count: int) -> Any:
        try:
            return self._send(self._connect(), command, count)
        except _Broken as broken:
            raise redis.exceptions.ConnectionError(f"Redis connection failed: {broken}") from None

    def _send(self, conn: _Connection, command: bytes, count: int) -> Any:
        """Send on ``conn`` and read the replies; ``conn`` goes back to the pool after them
        and is closed after any failure."""
        try:
            reply = conn.call(command, count)
        except TimeoutError as error:
            conn.sock.close()
            raise redis.exceptions.TimeoutError(f"Redis did not answer in time: {error}") from None
        except (OSError, redis.exceptions.ConnectionError) as error:
            conn.sock.close()
            raise _Broken(str(error)) from None
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
                if self._tls is not None:
                    sock = self._wrap(sock, self._address[0])
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

    def _wrap(self, sock: socket.socket, host: str) -> socket.socket:
        assert self._tls is not None
        try:
            return self._tls.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        while self._idle:
            self._idle.pop().sock.close()


def fast_caller(url: str, timeout: float) -> FastCaller | None:
    """A ``FastCaller`` for ``url``, or None when the URL needs redis-py (rule 1)."""
    if url.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
        return None
    options = parse_url(url)
    tls = None
    if options.get("connection_class") is SSLConnection:
        if {name for name in options if name.startswith("ssl")} - _TLS_OPTIONS:
            return None
        tls = tls_context(options)
    address: tuple[str, int] | str
    if options.get("connection_class") is UnixDomainSocketConnection:
        address = options["path"]
    else:
        address = (options.get("host", "localhost"), options.get("port", 6379))
    return FastCaller(
        address,
        db=int(options.get("db", 0)),
        username=options.get("username"),
        password=options.get("password"),
        timeout=timeout,
        tls=tls,
    )


def tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The client TLS context redis-py's SSLConnection would make from these URL options."""
    requirement = _CERT_REQS[str(options.get("ssl_cert_reqs", "required")).lower()]
    context = ssl.create_default_context()
    context.check_hostname = (
        to_bool(options.get("ssl_check_hostname", True)) is not False
        and requirement != ssl.CERT_NONE
    )
    context.verify_mode = requirement
    if options.get("ssl_certfile") or options.get("ssl_keyfile"):
        context.load_cert_chain(
            options.get("ssl_certfile") or options["ssl_keyfile"],
            options.get("ssl_keyfile"),
            options.get("ssl_password"),
        )
    if options.get("ssl_ca_certs") or options.get("ssl_ca_path"):
        context.load_verify_locations(options.get("ssl_ca_certs"), options.get("ssl_ca_path"))
    return context
