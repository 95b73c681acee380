"""Disabled frontends (``disable frontend F`` on the Runtime API) applied on this host: HAProxy
2.6's paused listeners, for the whole fleet.

A disabled frontend's binds take no new connection on any host; connections already accepted
are served on, and the other frontends serve as before. Each listening socket is shared by the
gunicorn master (which owns it) and every worker (which accept on it), and both act:

1. The master takes the frontend's sockets out of LISTEN: ``shutdown(SHUT_RD)`` on a listening
   socket is Linux's disconnect, as the ``connect(AF_UNSPEC)`` with which HAProxy 2.6 pauses a
   listener. The kernel then refuses new connections (the client sees ECONNREFUSED) and resets
   those waiting in the backlog, exactly as against a paused HAProxy. Enabling calls
   ``listen()`` again on the same socket: same port, same descriptor in every worker.
2. Each worker stops watching those sockets (``FrontendListener.pause``): without the master
   (a plain ``gunicorn -k geoproxy.runtime.worker.ProxyWorker``) that is all that happens, and
   new connections then wait in the kernel's backlog until the frontend is enabled again.
3. Both read ``gp:frontends:admin`` (``state/frontend_admin.py``) once before serving, so
   that a new worker, a reloaded configuration and a restarted host apply the fleet's state
   before they accept anything. Then the master polls it every ``POLL_PERIOD`` (its
   ``FrontendGate``), and each worker reads it in its heartbeat's pipeline (no round trip of
   its own; ``ProxyWorker``). The master whose Runtime API socket took the command applies it
   before answering, as HAProxy pauses before it answers (``HostFirstOps``); every other host
   refuses connections within a ``POLL_PERIOD``, and every worker follows within a heartbeat.
4. Between the master's change and a worker's, a worker may still watch a socket out of LISTEN:
   ``FrontendListener`` survives the EINVAL that ``accept`` returns then (its rule 3).
5. While Redis is away (or refuses the read) the last state read stays (DESIGN.md invariant
   4), logged once.
6. The master's gate is a greenlet (``geoproxy run`` patches the master with gevent before
   anything, ``cli.py``), which a fork copies into each new worker: the arbiter forks with the
   gate held (``held``), so that no Redis call of the gate is in flight across a fork, and the
   worker kills its copy at once (``abandon``; a copy that ran anyway would do nothing outside
   the process that started it).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from geoproxy.config.model import Config
from geoproxy.state.frontend_admin import FrontendAdmin
from geoproxy.state.heartbeat import HEARTBEAT_PERIOD
from geoproxy.state.runtime_ops import RuntimeOps

log = logging.getLogger("geoproxy")

POLL_PERIOD = HEARTBEAT_PERIOD / 2  # seconds: every host refuses within half a heartbeat
_WILDCARDS = ("", "*")


def frontend_of(config: Config, address: Any) -> str | None:
    """The frontend one of whose ``bind`` lines made the listening socket named ``address``:
    same host and port, else same port (a wildcard bind's socket is named 0.0.0.0); None for
    an address no frontend binds."""
    if not isinstance(address, tuple) or len(address) < 2:
        return None
    host, port = str(address[0]), address[1]
    same_port: str | None = None
    for frontend in config.frontends:
        for bind in frontend.binds:
            if bind.port != port:
                continue
            if ("0.0.0.0" if bind.host in _WILDCARDS else bind.host) == host:
                return frontend.name
            same_port = same_port or frontend.name
    return same_port


class FrontendGate:
    """Keeps the master's listening sockets in step with the fleet's disabled frontends (module
    rules): ``apply`` gets the names disabled now, at ``start`` and every ``POLL_PERIOD``.
    ``disabled`` is the last state read."""

    def __init__(self, redis_url: str, apply: Callable[[frozenset[str]], None]) -> None:
        self.disabled: frozenset[str] = frozenset()
        self._url = redis_url
        self._apply = apply
        self._admin: FrontendAdmin | None = None
        self._lock = Semaphore()
        self._stop = Event()
        self._failing = False
        self._pid = os.getpid()
        self._loop_greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        """Apply the fleet's state now, then keep polling it."""
        self.refresh()
        self._loop_greenlet = gevent.spawn(self._loop)

    def refresh(self) -> None:
        """Read the fleet's state and apply it, now (rule 5 when Redis is away)."""
        with self._lock:
            if os.getpid() != self._pid:
                return  # a forked child's copy (rule 6)
            try:
                if self._admin is None:
                    self._admin = FrontendAdmin.connect(self._url)
                disabled = self._admin.disabled()
            except Exception as error:  # Redis away (rule 5), or refusing (an ACL, a wrong type)
                if not self._failing:
                    log.warning("disabled frontends: cannot read them from Redis (%s); the "
                                "last state read stays", error)
                    self._failing = True
                disabled = self.disabled
            else:
                if self._failing:
                    log.info("disabled frontends: read from Redis again")
                    self._failing = False
            self.disabled = disabled
            self._apply(disabled)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_PERIOD):
            try:
                self.refresh()
            except Exception:  # never let the gate die: the next period tries again
                log.exception("disabled frontends: unexpected error")

    @contextmanager
    def held(self) -> Iterator[None]:
        """No refresh runs (and no Redis call of the gate is in flight) inside the block."""
        with self._lock:
            yield

    def abandon(self) -> None:
        """In a forked child: end this copy, touching nothing the parent's copy uses."""
        self._stop.set()
        if self._loop_greenlet is not None:
            self._loop_greenlet.kill(block=False)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None


def pause_listeners(
    listeners: Sequence[Any], config: Config, disabled: frozenset[str], backlog: int
) -> None:
    """The master's part (rule 1): each listening socket of a disabled frontend out of LISTEN,
    each other one listening (again). ``listeners`` are gunicorn's (they pass socket calls
    through to their socket); one closed meanwhile by a reload is skipped."""
    for listener in listeners:
        try:
            name = frontend_of(config, listener.getsockname())
            listening = bool(listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
            if name in disabled and listening:
                listener.shutdown(socket.SHUT_RD)
                log.info("frontend %s disabled: %s takes no new connection", name,
                         _address(listener))
            elif name not in disabled and not listening:
                listener.listen(backlog)
                log.info("frontend %s enabled: %s accepts again", name, _address(listener))
        except OSError as error:
            log.debug("listener skipped by the frontend gate: %s", error)


def _address(listener: Any) -> str:
    host, port = listener.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class HostFirstOps(RuntimeOps):
    """``RuntimeOps`` whose frontend changes hold on this host's listeners before the command
    answers (rule 3)."""

    def __init__(self, redis_url: str, gate: FrontendGate) -> None:
        super().__init__(redis_url)
        self._gate = gate

    def disable_frontend(self, frontend: str) -> bool:
        changed = super().disable_frontend(frontend)
        self._gate.refresh()
        return changed

    def enable_frontend(self, frontend: str) -> bool:
        changed = super().enable_frontend(frontend)
        self._gate.refresh()
        return changed
