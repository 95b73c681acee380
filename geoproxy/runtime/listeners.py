"""The listening sockets of ``geoproxy run``, bound before anything else starts.

Rules:
1. Every ``bind`` of every frontend is bound and listening before geoproxy says "listening",
   starts an embedded Redis, demo backends or gunicorn: a port in use stops the start at once,
   having started nothing and touched nothing another process owns.
2. A bind that fails is reported as HAProxy 2.6 reports it, with the configuration line of
   the ``bind`` (``Binding [file:line] for frontend NAME: cannot bind ...``); every failing
   bind is reported, then the process exits 1. There are no retries: a port in use now is in
   use for the operator to look at.
3. The sockets are handed to gunicorn as they are (its ``create_sockets`` with descriptors),
   so gunicorn never binds for itself and never loops on ``Connection in use``.
4. An IPv6 listener takes IPv4 clients too (Linux's default), unless its bind says
   ``v6only`` or an IPv4 bind shares its port: then it takes IPv6 clients only
   (``IPV6_V6ONLY``), and the IPv4 one its own, so ``bind :25`` with ``bind :::25`` serves
   both families, as HAProxy's pair does.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

from geoproxy.config.model import Bind, Config

# gunicorn's default backlog; gunicorn calls listen() again with its own setting
BACKLOG = 2048
_WILDCARDS = ("", "*")


@dataclass(frozen=True, slots=True)
class BindFailure:
    """One ``bind`` that could not be bound: ``kind`` is ``frontend`` or ``proxy`` (a
    ``listen`` section, as HAProxy names it)."""

    kind: str
    frontend: str
    bind: Bind
    reason: str

    def __str__(self) -> str:
        host = f"[{self.bind.host}]" if ":" in self.bind.host else self.bind.host
        return (
            f"Binding [{self.bind.location}] for {self.kind} '{self.frontend}': cannot bind "
            f"{host or '0.0.0.0'}:{self.bind.port}: {self.reason}"
        )


class BindError(Exception):
    """Some binds failed (``failures``); the ones that had succeeded are closed."""

    def __init__(self, failures: list[BindFailure]) -> None:
        self.failures = failures
        super().__init__("\n".join(str(failure) for failure in failures))


def bind_all(config: Config) -> list[socket.socket]:
    """Bind and listen on every ``bind`` of ``config`` (module rules); raises ``BindError``
    listing each failure, after closing what it had bound."""
    listens = {b.name for b in config.backends if _is_listen(config, b.name)}
    bound: list[socket.socket] = []
    failures: list[BindFailure] = []
    ipv6_only = ipv6_only_binds(config)
    for frontend in config.frontends:
        kind = "proxy" if frontend.name in listens else "frontend"
        for bind in frontend.binds:
            try:
                bound.append(_listen(bind, v6only=bind.address in ipv6_only))
            except OSError as error:
                reason = error.strerror or str(error)
                failures.append(BindFailure(kind, frontend.name, bind, reason))
    if failures:
        for sock in bound:
            sock.close()
        raise BindError(failures)
    return bound


def ipv6_only_binds(config: Config) -> set[tuple[str, int]]:
    """The addresses of the IPv6 binds whose listener takes no IPv4 client (rule 4)."""
    binds = [bind for frontend in config.frontends for bind in frontend.binds]
    ipv4_ports = {bind.port for bind in binds if ":" not in bind.host}
    return {bind.address for bind in binds
            if ":" in bind.host and (bind.v6only or bind.port in ipv4_ports)}


def _is_listen(config: Config, name: str) -> bool:
    frontend, backend = config.frontend(name), config.backend(name)
    return frontend is not None and backend is not None and frontend.location == backend.location


def _listen(bind: Bind, *, v6only: bool = False) -> socket.socket:
    host = "0.0.0.0" if bind.host in _WILDCARDS else bind.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # as gunicorn sets it: a restart must not wait for TIME_WAIT connections to expire
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # rule 4
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind((host, bind.port))
        sock.listen(BACKLOG)
    except OSError:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return sock
