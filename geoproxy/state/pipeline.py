"""One Redis connection shared by every greenlet of a gevent worker, pipelined.

On the request path each request makes one Redis call (the acquire script). With a
connection per call, each call costs a write and a read system call in the worker, another
two in Redis, and a watcher started and stopped in the hub. Here the calls that greenlets
make in one turn of the hub leave in one write; the replies are read by a hub callback and
handed to their callers in order, so a batch of N calls costs one write and one read on
each side.

Rules:
1. Redis answers a connection's commands in the order it received them: the ``n``-th reply
   read belongs to the ``n``-th command written. ``_waiting`` holds, in that order, one entry
   per command: the caller's waiter, and for a caller that sent several commands at once the
   list its replies collect in; a command enters it in the same step as its bytes enter the
   outbox.
2. Writes and reads happen in hub callbacks, on a non-blocking socket: nothing here ever
   blocks the hub. A caller waits on its own ``Waiter``.
3. A caller whose timeout expires (its watchdog guard threw ``TimeoutError``) breaks the
   pipeline, as redis-py drops a connection that timed out: Redis is slow or gone.
4. A socket error, a close or a timeout fails every caller still waiting (``ConnectionError``)
   and breaks the pipeline for good: the owner makes a new one for the next call.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Any

import hiredis
import redis
from gevent import get_hub
from gevent.hub import Waiter
from gevent.monkey import get_original

from geoproxy import watchdog

_RECV = 65536
_real_socket = get_original("socket", "socket")


class Pipeline:
    """A connected, handshaken gevent socket turned into a shared pipelined connection."""

    def __init__(self, connected: socket.socket, timeout: float) -> None:
        # the same file descriptor as a plain non-blocking socket: rule 2
        self._sock = _real_socket(fileno=connected.detach())
        self._sock.setblocking(False)
        self._timeout = timeout
        self._reader = hiredis.Reader(encoding="utf-8")
        self._outbox: list[bytes] = []
        self._unsent = b""
        # (waiter, replies collected for a multi-command call or None, last of its call)
        self._waiting: deque[tuple[Waiter, list[Any] | None, bool]] = deque()
        self._guards: list[watchdog.Guard] = []
        self._flush_scheduled = False
        self.broken: Exception | None = None
        self._hub = get_hub()
        loop = self._hub.loop
        self._reading = loop.io(self._sock.fileno(), 1)
        self._reading.ref = False  # an idle connection does not keep the hub alive
        self._reading.start(self._on_readable)
        self._writing = loop.io(self._sock.fileno(), 2)
        self._writing.ref = False

    def call(self, command: bytes, count: int = 1) -> Any:
        """Send packed ``command`` (``count`` commands packed together) and return its reply
        (the list of their replies when ``count`` > 1; a ``hiredis.ReplyError`` for an error
        reply). Raises ``TimeoutError`` after the timeout, ``redis.ConnectionError`` when the
        connection fails."""
        if self.broken is not None:
            raise redis.exceptions.ConnectionError(f"Redis connection failed: {self.broken}")
        waiter = Waiter(self._hub)
        if count == 1:
            self._waiting.append((waiter, None, True))
        else:
            replies: list[Any] = []
            self._waiting.extend((waiter, replies, i == count - 1) for i in range(count))
        self._outbox.append(command)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._hub.loop.run_callback(self._flush)
        guard = self._guards.pop() if self._guards else watchdog.new_guard()
        if guard is not None:
            guard.arm(self._timeout)
        try:
            return waiter.get()
        except TimeoutError:
            self.close()  # rule 3
            raise
        finally:
            if guard is not None:
                guard.disarm()
                self._guards.append(guard)

    def close(self) -> None:
        """Break the pipeline (in a hub callback: only the hub may wake the waiting callers)."""
        if self.broken is None:
            self.broken = ConnectionError("connection closed")
            self._hub.loop.run_callback(self._shut, self.broken)

    # -- hub callbacks (rule 2) ---------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.broken is not None or not self._outbox:
            return
        data = self._unsent + b"".join(self._outbox)
        self._outbox.clear()
        self._send(data)

    def _send(self, data: bytes) -> None:
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._fail(error)
            return
        self._unsent = data[sent:]
        if self._unsent and not self._writing.active:
            self._writing.start(self._on_writable)

    def _on_writable(self) -> None:
        self._writing.stop()
        if self.broken is None:
            self._send(self._unsent + b"".join(self._outbox))
            self._outbox.clear()

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError as error:
            self._fail(error)
            return
        if not data:
            self._fail(ConnectionError("Redis closed the connection"))
            return
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiting:
                self._fail(ConnectionError("a reply no command asked for"))
                return
            waiter, replies, last = waiting.popleft()
            if replies is not None:
                replies.append(reply)
                if not last:
                    continue
                reply = replies
            if waiter.greenlet is not None:  # else its caller gave up (and broke us)
                waiter.switch(reply)
            if self.broken is not None:
                return

    def _fail(self, error: Exception) -> None:
        if self.broken is not None:
            return
        self.broken = error
        self._shut(error)

    def _shut(self, error: Exception) -> None:
        self._reading.stop()
        self._writing.stop()
        self._sock.close()
        waiting, self._waiting = self._waiting, deque()
        failure = redis.exceptions.ConnectionError(f"Redis connection failed: {error}")
        for waiter, _, last in waiting:
            if last and waiter.greenlet is not None:
                waiter.throw(failure)
