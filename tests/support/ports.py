"""Loopback ports: pick free ones, wait until one accepts connections (bounded)."""

from __future__ import annotations

import contextlib
import socket

from geoproxy.demo.fleet import wait_for_port
from geoproxy.runtime.embedded_redis import free_tcp_port

__all__ = ["free_port", "free_ports", "wait_for_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    return free_tcp_port("127.0.0.1")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all probes are held open until every port is chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports
