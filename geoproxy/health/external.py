"""One external check (``option external-check``), run as HAProxy 2.6 runs it.

Rules (manual 4.2 ``external-check command``; HAProxy's check statuses):
1. The command runs with the arguments ``<proxy_address> <proxy_port> <server_address>
   <server_port>`` ("NOT_USED" for the proxy's in a backend) and only HAProxy's environment:
   ``HAPROXY_PROXY_ADDR``, ``_ID``, ``_NAME``, ``_PORT``, ``HAPROXY_SERVER_ADDR``, ``_CURCONN``,
   ``_ID``, ``_MAXCONN``, ``_NAME``, ``_PORT``, ``_SSL``, ``_PROTO``, and ``PATH`` (from
   ``external-check path``, "" by default), which also finds a bare command name. A server
   named by a host name is given the address it resolves to now (its first, as the forwarder
   connects to it; HAProxy gives the address it resolved at start), or the name if it does not
   resolve.
2. Exit status 0: PROCOK "External check passed"; any other status, or a command that cannot
   be started: PROCERR "External check error"; still running at the check's timeout: PROCTOUT
   "External check timeout", and the process is killed with its process group.
3. It runs through gevent's subprocess, so a worker's other greenlets go on while it runs; the
   process is always waited for (no zombie), its output goes nowhere, it reads nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import signal
import socket
import time
from dataclasses import dataclass

from gevent import subprocess

from geoproxy.config.model import ExternalCheck

NOT_USED = "NOT_USED"


@dataclass(frozen=True, slots=True)
class ExternalTarget:
    """What the command is told about the server it checks (rule 1)."""

    check: ExternalCheck
    proxy_name: str
    server_name: str
    server_id: int
    server_addr: str
    server_port: int
    maxconn: int
    tls: bool
    proto: str  # "h1" (HTTP backends) or "tcp", as HAPROXY_SERVER_PROTO says
    timeout: float


@dataclass(frozen=True, slots=True)
class ExternalResult:
    passed: bool
    code: str  # PROCOK, PROCERR, PROCTOUT
    description: str


def command_line(target: ExternalTarget) -> list[str]:
    check = target.check
    return [check.command, check.proxy_addr or NOT_USED, check.proxy_port or NOT_USED,
            target.server_addr, str(target.server_port)]


def environment(target: ExternalTarget, curconn: int = 0) -> dict[str, str]:
    check = target.check
    return {
        "PATH": check.path,
        "HAPROXY_PROXY_ADDR": check.proxy_addr,
        "HAPROXY_PROXY_ID": str(check.proxy_id),
        "HAPROXY_PROXY_NAME": target.proxy_name,
        "HAPROXY_PROXY_PORT": check.proxy_port,
        "HAPROXY_SERVER_ADDR": target.server_addr,
        "HAPROXY_SERVER_CURCONN": str(curconn),
        "HAPROXY_SERVER_ID": str(target.server_id),
        "HAPROXY_SERVER_MAXCONN": str(target.maxconn),
        "HAPROXY_SERVER_NAME": target.server_name,
        "HAPROXY_SERVER_PORT": str(target.server_port),
        "HAPROXY_SERVER_SSL": "1" if target.tls else "0",
        "HAPROXY_SERVER_PROTO": target.proto,
    }


def run_external(target: ExternalTarget) -> ExternalResult:
    """Run the check's command once (rules 2 and 3); never raises."""
    started = time.monotonic()
    target = dataclasses.replace(target, server_addr=_address(target.server_addr))
    try:
        process = subprocess.Popen(
            command_line(target), env=environment(target), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
            start_new_session=True)
    except (OSError, ValueError) as error:
        return ExternalResult(False, "PROCERR", f"External check error: {error}")
    try:
        remaining = max(target.timeout - (time.monotonic() - started), 0.001)
        status = process.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        _kill(process.pid)
        process.wait()
        return ExternalResult(False, "PROCTOUT", "External check timeout")
    except BaseException:  # the greenlet is killed: take the process down with it
        _kill(process.pid)
        process.wait()
        raise
    if status == 0:
        return ExternalResult(True, "PROCOK", "External check passed")
    code = status if status > 0 else -status  # a signal number when it was killed
    return ExternalResult(False, "PROCERR", f"External check error, code: {code}")


def _address(host: str) -> str:
    """Rule 1: the address a host name resolves to, first of the system resolver's answers."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, IndexError):
        return host


def _kill(pid: int) -> None:
    """The command and whatever it started (its own session: ``start_new_session``)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # already gone
        pass
