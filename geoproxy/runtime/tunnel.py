"""A tunnel between a client's socket and a server's: after a protocol switch (a 101), and for
the whole life of a ``mode tcp`` connection.

Rules:
1. Two greenlets copy bytes, one each way, each through one receive of at most
   ``buffer_size`` bytes at a time: a side that stops reading holds the other's copy in
   ``sendall`` (TCP's own flow control), so a tunnel holds at most two buffers, whatever flows
   through it. Buffers come from a per-process pool and go back to it after each copy: an idle
   tunnel holds none (a process with many idle TCP connections keeps its memory).
2. The end of one side's stream (a FIN) is passed on as a half-close: the other side's write
   direction is shut down, and that direction of the tunnel is done. The tunnel ends when both
   directions are done.
3. An error on either side (a reset, a broken pipe) ends the tunnel at once, and so do
   ``timeout`` seconds with no byte moved in either direction (HAProxy's ``timeout tunnel``;
   ``fin_timeout`` instead once one direction is done: ``timeout client-fin``/``server-fin``)
   and ``cut``. A write that fails because its peer had already closed its own stream is a
   normal end.
4. ``run`` returns once both greenlets are gone; the caller owns both sockets and
   closes them. The sockets' own timeouts are removed: rule 3's clock is the only one.
5. Bulk transfer stays in few system calls: a copy tries the receive on the socket itself first
   and waits for input only when there is none, so a busy tunnel does not yield to the hub
   between two buffers.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from typing import Final

import gevent
import gevent.event

from geoproxy.netio import sendall, wait_readable

BUFFER_SIZE: Final = 16384
BULK_BUFFER_SIZE: Final = 262144  # mode tcp: fewer system calls per byte on bulk transfers
_KILL_WAIT: Final = 1.0  # seconds to wait for a killed copy to unwind
_POOLED: Final = 64  # free buffers kept per size


class _BufferPool:
    """Free buffers of one size (rule 1); a process's greenlets share it."""

    __slots__ = ("size", "_free")

    def __init__(self, size: int) -> None:
        self.size = size
        self._free: list[bytearray] = []

    def take(self) -> bytearray:
        return self._free.pop() if self._free else bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        if len(self._free) < _POOLED:
            self._free.append(buffer)


_pools: dict[int, _BufferPool] = {}


def _pool(size: int) -> _BufferPool:
    pool = _pools.get(size)
    if pool is None:
        pool = _pools[size] = _BufferPool(size)
    return pool


@dataclass(frozen=True, slots=True)
class TunnelReport:
    """What a tunnel carried: ``up`` bytes from the client to the server, ``down`` bytes back,
    and how it ended, as the log's termination state: ``--`` (a side closed), ``cD`` (the
    timeout), ``CD`` or ``SD`` (the client's or the server's connection failed), ``DD``
    (``cut``: its server went down with ``on-marked-down shutdown-sessions``)."""

    up: int
    down: int
    ending: str


class _Activity:
    """When a byte last moved either way, and the event that wakes the supervisor."""

    __slots__ = ("last", "changed")

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.changed = gevent.event.Event()


class _Copy:
    """One direction: ``source``'s bytes to ``sink`` (rules 1, 2 and 5)."""

    __slots__ = ("source", "sink", "first", "moved", "done", "failed", "_activity", "_pool")

    def __init__(
        self,
        source: socket.socket,
        sink: socket.socket,
        first: bytes,
        activity: _Activity,
        pool: _BufferPool,
    ) -> None:
        self.source = source
        self.sink = sink
        self.first = first
        self.moved = 0
        self.done = False  # the source's stream ended and the sink was told
        self.failed: socket.socket | None = None  # the socket whose call failed
        self._activity = activity
        self._pool = pool

    def run(self) -> None:
        activity, pool, source, sink = self._activity, self._pool, self.source, self.sink
        # the operating system's socket under gevent's, for a receive that never waits (not
        # under a TLS socket: its bytes are ciphertext; its own receive waits instead)
        raw = getattr(source, "_sock", None) if getattr(source, "_sslobj", None) is None \
            else None
        failing = source
        try:
            if self.first:
                failing = sink
                sendall(sink, self.first)
                self.moved += len(self.first)
                activity.last = time.monotonic()
            while True:
                failing = source
                buffer = pool.take()
                try:
                    try:
                        received = (raw or source).recv_into(buffer)
                    except BlockingIOError:
                        received = -1
                    if received > 0:
                        activity.last = time.monotonic()
                        failing = sink
                        sendall(sink, memoryview(buffer)[:received])
                        self.moved += received
                        activity.last = time.monotonic()
                finally:
                    pool.give(buffer)
                if received == 0:
                    break
                if received < 0:
                    wait_readable(source)  # idle: no buffer held while waiting
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            self.done = True
        except OSError:
            self.failed = failing
        finally:
            activity.changed.set()


class Tunnel:
    """One tunnel (module rules): ``run`` it in the connection's greenlet; ``cut`` ends it
    from any other (HAProxy's ``shutdown-sessions``)."""

    __slots__ = ("client", "server", "timeout", "fin_timeout", "_up", "_down", "_activity",
                 "_cut")

    def __init__(
        self,
        client: socket.socket,
        server: socket.socket,
        *,
        to_server: bytes = b"",
        to_client: bytes = b"",
        timeout: float | None,
        fin_timeout: float | None = None,
        buffer_size: int = BUFFER_SIZE,
    ) -> None:
        """``to_server``: what the client sent after its request; ``to_client``: what the
        server sent after its 101 head; ``timeout``: seconds of inactivity both ways that
        end the tunnel (None: no limit); ``fin_timeout``: the same once one direction is done
        (None: ``timeout``); ``buffer_size``: the most one receive takes."""
        self.client = client
        self.server = server
        self.timeout = timeout
        self.fin_timeout = fin_timeout
        self._activity = _Activity()
        pool = _pool(buffer_size)
        self._up = _Copy(client, server, to_server, self._activity, pool)
        self._down = _Copy(server, client, to_client, self._activity, pool)
        self._cut = False

    def cut(self) -> None:
        self._cut = True
        self._activity.changed.set()

    def run(self) -> TunnelReport:
        """Copy bytes both ways until the tunnel ends; report what it carried."""
        self.client.settimeout(None)
        self.server.settimeout(None)
        up, down, activity, timeout = self._up, self._down, self._activity, self.timeout
        copies = [gevent.spawn(up.run), gevent.spawn(down.run)]
        timed_out = False
        try:
            while not (up.done and down.done) and up.failed is None and down.failed is None:
                if self._cut:
                    break
                if (up.done or down.done) and self.fin_timeout is not None:
                    timeout = self.fin_timeout
                if timeout is None:
                    activity.changed.wait()
                else:
                    idle = time.monotonic() - activity.last
                    if idle >= timeout:
                        timed_out = True
                        break
                    activity.changed.wait(timeout - idle)
                activity.changed.clear()
        finally:
            gevent.killall(copies, block=True, timeout=_KILL_WAIT)
        if self._cut:
            ending = "DD"  # HAProxy's code for a session killed as its server went down
        else:
            ending = _ending(up, down, self.client, timed_out)
        return TunnelReport(up.moved, down.moved, ending)


def run_tunnel(
    client: socket.socket,
    server: socket.socket,
    *,
    to_server: bytes = b"",
    to_client: bytes = b"",
    timeout: float | None,
) -> TunnelReport:
    """``Tunnel(...).run()``, for a tunnel nobody needs to cut."""
    tunnel = Tunnel(client, server, to_server=to_server, to_client=to_client, timeout=timeout)
    return tunnel.run()


def _ending(up: _Copy, down: _Copy, client: socket.socket, timed_out: bool) -> str:
    if timed_out:
        return "cD"
    for copy, reverse in ((up, down), (down, up)):
        failed = copy.failed
        if failed is None:
            continue
        if failed is copy.sink and reverse.done:
            continue  # its peer had closed its own stream already: a normal end (rule 3)
        return "CD" if failed is client else "SD"
    return "--"
