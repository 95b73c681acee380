"""Keep-alive connections to one server, per worker process.

Rules:

1. A pool belongs to one worker process and one server (host, port). It is never shared across
   processes: after a fork, build new pools.
2. Idle connections form a LIFO bounded by ``max_idle``: the most recently used connection is
   the likeliest to still be open on the server side. A connection released while the pool is
   full is closed.
3. A connection is in the pool only between two exchanges: with no request in flight, no
   unread response byte and nothing buffered. Whoever takes it out owns it until it gives it
   back with ``release`` or closes it.
4. A connection taken from the pool is checked for a server-side close (or for stray bytes the
   server sent while it was idle) with a zero-timeout poll before it is handed out; a failed
   check closes it and the next idle one is tried.
5. Nothing here blocks a gevent hub: sockets come from the ``socket`` module at call time, so
   monkey-patched gevent sockets are used under gunicorn's gevent workers.
6. ``timeout server`` bounds each receive and each send of a connection (``Connection.timeout``):
   in a process running ``geoproxy.watchdog`` it is enforced by the watchdog (the socket has
   no timeout: gevent would arm a timer per wait), elsewhere by the socket's own timeout.

7. A pool with ``tls`` (``server ... ssl``) shakes hands on each new connection within the
   connect timeout; a failed handshake is a failed connect. Its idle connections are TLS
   connections, kept and checked like any other (a TLS socket that holds decrypted bytes is
   not idle: it is closed instead).
8. A pool with a ``header`` (``server ... send-proxy``: a PROXY protocol header) sends it on
   each new connection right after the TCP connect, before any TLS handshake, as HAProxy
   does. Such a pool carries one client connection's requests only (``PrivatePools``).

``ServerPool.opened`` counts the connections the pool opened (for tests and statistics).
"""

from __future__ import annotations

import select
import socket
from typing import TYPE_CHECKING, Any

from gevent.monkey import get_original

if TYPE_CHECKING:
    from geoproxy.runtime.tls_client import ClientTls

from geoproxy import watchdog
from geoproxy.errors import ConnectFailed
from geoproxy.netio import guarded_sendall, tls_pending, wait_readable

# The read buffer of a connection: a response head must fit in it (HAProxy's tune.bufsize
# default is 16384 too; a larger head is a 502 there as here).
BUFFER_SIZE = 16384

# The operating system's poll even under gevent's monkey-patching (which makes select.poll
# cooperative): a zero-timeout poll must return at once, not yield to the hub.
_poll = get_original("select", "poll")
_INPUT_EVENTS = select.POLLIN | select.POLLPRI | select.POLLRDHUP


class Connection:
    """One TCP connection to a server and its read buffer.

    ``buf[start:end]`` holds bytes received but not yet consumed. ``reused`` is true when the
    connection was taken from the pool's idle list rather than freshly opened.
    """

    __slots__ = ("sock", "buf", "view", "start", "end", "reused", "timeout", "_poller", "_guard")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.timeout: float | None = sock.gettimeout()
        self._guard = watchdog.new_guard()
        if self._guard is not None:
            sock.settimeout(None)
        self._poller = _poll()
        self._poller.register(sock.fileno(), _INPUT_EVENTS)
        self.buf = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self.reused = False

    def fill(self) -> int:
        """Receive more bytes after ``buf[start:end]``; return how many (0: the server closed).

        Compacts the buffer first when needed. Raises ``BufferError`` when the buffer is full of
        unconsumed bytes (the caller decides what that means), and whatever ``recv_into``
        raises (``TimeoutError``, ``OSError``).
        """
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == BUFFER_SIZE:
            if self.start == 0:
                raise BufferError("read buffer full")
            pending = self.end - self.start
            self.buf[:pending] = self.view[self.start : self.end]
            self.start, self.end = 0, pending
        guard = self._guard
        if guard is None:
            received = self.sock.recv_into(self.view[self.end :])
        else:
            guard.arm(self.timeout)
            try:
                received = self.sock.recv_into(self.view[self.end :])
            finally:
                guard.disarm()
        self.end += received
        return received

    def wait_readable(self) -> None:
        """Wait (at most ``timeout``) until the server sent something, before the first receive
        of a response: it cannot be there yet, and a receive that fails costs more."""
        guard = self._guard
        if guard is None:
            return  # a plain socket's receive waits anyway
        guard.arm(self.timeout)
        try:
            wait_readable(self.sock)
        finally:
            guard.disarm()

    def set_timeout(self, timeout: float | None) -> None:
        """Bound each later receive and send by ``timeout`` seconds (rule 6)."""
        if timeout != self.timeout:
            self.timeout = timeout
            if self._guard is None:
                self.sock.settimeout(timeout)

    def recv(self, size: int) -> bytes:
        """Receive at most ``size`` bytes, bypassing the buffer (which must be empty)."""
        guard = self._guard
        if guard is None:
            return self.sock.recv(size)
        guard.arm(self.timeout)
        try:
            return self.sock.recv(size)
        finally:
            guard.disarm()

    def sendall(self, data: bytes) -> None:
        guarded_sendall(self.sock, data, self._guard, self.timeout)

    def take(self, size: int) -> bytes:
        """Consume and return up to ``size`` buffered bytes."""
        stop = min(self.start + size, self.end)
        data = bytes(self.view[self.start : stop])
        self.start = stop
        return data

    @property
    def buffered(self) -> int:
        return self.end - self.start

    def has_input(self) -> bool:
        """Whether the server sent something (bytes, a close, a reset) not yet received.

        Never blocks: one zero-timeout poll (errors and hang-ups are always reported).
        """
        return bool(self._poller.poll(0))

    def close(self) -> None:
        self.sock.close()


class ServerPool:
    """Idle keep-alive connections to ``host:port`` (see the module rules)."""

    __slots__ = ("host", "port", "max_idle", "opened", "tls", "header", "_idle", "_address")

    def __init__(self, host: str, port: int, *, max_idle: int = 64,
                 tls: ClientTls | None = None, header: bytes = b"") -> None:
        if max_idle < 0:
            raise ValueError("max_idle must be >= 0")
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.opened = 0
        self.tls = tls
        self.header = header
        self._idle: list[Connection] = []
        self._address: tuple[socket.AddressFamily, Any] | None = None

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def acquire(self, connect_timeout: float | None) -> Connection:
        """Return a checked idle connection, or a new one (``ConnectFailed`` if that fails)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.has_input():
                conn.close()
                continue
            conn.reused = True
            return conn
        return self.connect(connect_timeout)

    def connect(self, connect_timeout: float | None) -> Connection:
        """Open a new connection, TCP_NODELAY set; raise ``ConnectFailed`` on any failure.

        The server's address is resolved once, at the first connection, as HAProxy resolves
        server addresses once at start-up.
        """
        try:
            family, sockaddr = self._address or self._resolve()
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectFailed(f"{self.host}:{self.port}: {exc}") from exc
        try:
            sock.settimeout(connect_timeout)
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.header:  # rule 8: before the TLS handshake
                sock.sendall(self.header)
            if self.tls is not None:  # rule 7
                sock = self.tls.wrap(sock, connect_timeout)
        except OSError as exc:
            sock.close()
            raise ConnectFailed(f"{self.host}:{self.port}: {exc}") from exc
        self.opened += 1
        return Connection(sock)

    def private(self, header: bytes, max_idle: int) -> ServerPool:
        """A pool to the same server (address, TLS) whose connections start with ``header``
        (rule 8)."""
        pool = ServerPool(self.host, self.port, max_idle=max_idle, tls=self.tls, header=header)
        pool._address = self._address
        return pool

    def release(self, conn: Connection) -> None:
        """Give back a connection that is between two exchanges (rule 3); close it if full."""
        if len(self._idle) < self.max_idle and conn.buffered == 0 and not tls_pending(conn.sock):
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _resolve(self) -> tuple[socket.AddressFamily, Any]:
        infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        family, _type, _proto, _name, sockaddr = infos[0]
        # sockaddr as given: IPv6 ones carry flow info and a scope id
        self._address = (family, sockaddr)
        return self._address


