"""Socket helpers for the request path, shared by the worker, the forwarder and fleet state.

gevent's ``socket.sendall`` asks the kernel for SO_SNDBUF (a getsockopt system call) and reads
the clock on every call, before its first send: on a request path of three small sends that is
three system calls and a few microseconds of Python for nothing. ``sendall`` here makes one
``send`` and falls back to gevent's ``sendall`` (same timeout semantics) for what is left.
"""

from __future__ import annotations

from typing import Any


def sendall(sock: Any, data: bytes) -> None:
    """Send all of ``data`` on ``sock`` (a gevent or standard socket); raises as ``sendall``."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
