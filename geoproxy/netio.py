"""Socket helpers for the request path, shared by the worker, the forwarder and fleet state.

gevent's ``socket.sendall`` asks the kernel for SO_SNDBUF (a getsockopt system call) and reads
the clock on every call, before its first send: on a request path of three small sends that is
three system calls and a few microseconds of Python for nothing. ``sendall`` here makes one
``send`` and falls back to gevent's ``sendall`` (same timeout semantics) for what is left.
``send_nowait`` sends without waiting, so that no timeout needs arming when the kernel takes
everything at once; ``guarded_sendall`` is that pattern under a watchdog guard.
``wait_readable`` uses gevent's socket internals (``_wait``, ``_read_event``, there since
gevent 1.0) when it finds them, and does nothing otherwise; ``tls_pending`` tells a TLS socket
holding decrypted bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gevent import socket as gevent_socket

if TYPE_CHECKING:
    from geoproxy.watchdog import Guard

# gevent's TCP socket class exactly (its TLS sockets are a subclass: they may hold decrypted
# bytes, and are asked). Looking up an attribute gevent's socket lacks costs a failed lookup
# on the wrapped socket and an AttributeError: the request path avoids it.
_GEVENT_SOCKET = gevent_socket.socket


def sendall(sock: Any, data: bytes | memoryview) -> None:
    """Send all of ``data`` on ``sock`` (a gevent or standard socket); raises as ``sendall``."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def send_nowait(sock: Any, data: bytes) -> int:
    """Send what the kernel takes at once, never waiting: the number of bytes sent (0 when the
    socket's buffer is full, or for a socket that is not gevent's). A caller sends the rest, if
    any, under its timeout: the common small write needs no timeout armed at all."""
    if not isinstance(sock, gevent_socket.socket):
        return 0
    try:
        sent: int = sock.send(data, 0, 0.0)  # gevent's send: a zero timeout never waits
    except BlockingIOError:
        return 0
    return sent


def guarded_sendall(sock: Any, data: bytes, guard: Guard | None, timeout: float | None) -> None:
    """Send all of ``data`` within ``timeout``, kept by ``guard`` (the socket's own timeout
    when there is no guard): the guard is armed only when the kernel did not take it all at
    once. Raises OSError (``TimeoutError`` after ``timeout``)."""
    if guard is None:
        sendall(sock, data)
        return
    sent = send_nowait(sock, data)
    if sent == len(data):
        return
    guard.arm(timeout)
    try:
        sendall(sock, memoryview(data)[sent:])
    finally:
        guard.disarm()


def tls_pending(sock: Any) -> bool:
    """Whether ``sock`` is a TLS socket holding decrypted bytes nobody read (its file
    descriptor no longer shows them)."""
    if type(sock) is _GEVENT_SOCKET:
        return False  # plain TCP, the common case: no attribute lookup that fails
    pending = getattr(sock, "pending", None)
    return bool(pending is not None and pending())


def wait_readable(sock: Any) -> None:
    """Wait until ``sock`` has input (bytes, a close, an error), before a ``recv`` for an answer
    that cannot be there yet: a reply to what was just sent, the next request of a client that
    was just answered. gevent's ``recv`` would first try and fail with EAGAIN (a system call
    and an exception); a plain socket's blocking ``recv`` waits anyway, so nothing is done."""
    if type(sock) is _GEVENT_SOCKET:
        sock._wait(sock._read_event)
        return
    if tls_pending(sock):
        return
    wait = getattr(sock, "_wait", None)
    event = getattr(sock, "_read_event", None)
    if wait is not None and event is not None:
        wait(event)
