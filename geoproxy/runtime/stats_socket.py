"""The ``stats socket`` server: HAProxy's Runtime API on each ``geoproxy run`` host, served by
the gunicorn master (one socket per host, whatever the worker count).

Rules:
1. Sockets are bound by ``bind_stats_sockets`` before anything starts, as the frontends'
   binds are: a path in use by a live process, or an address in use, stops the start. A stale
   unix socket file (nobody listening) is replaced, as HAProxy replaces it.
2. Each listening socket has one accept greenlet; each connection one greenlet, at most
   ``MAX_SESSIONS`` at once (further ones are closed at once). ``geoproxy run`` patches the
   master with gevent before anything (``cli.py``): they run while the arbiter sleeps, never
   in the arbiter's loop.
3. Answers come from ``admin/runtime_api`` over ``RuntimeOps`` (Redis): a change reaches every
   worker of every host at its next snapshot refresh.
4. ``stop`` closes the listeners and removes the unix socket files this process created.
5. Only the master serves: a fork copies its greenlets into each new worker, which calls
   ``abandon`` at once (gunicorn's ``post_fork``): the copies are killed, and the worker's
   copies of the sockets closed, so that no worker accepts or answers on the master's sockets.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import socket
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gevent.pool import Group

from geoproxy.admin.runtime_api.context import Context, HostInfo, Level, RuntimeControl
from geoproxy.admin.runtime_api.session import Session
from geoproxy.config.model import Config, StatsSocket

log = logging.getLogger("geoproxy")

MAX_SESSIONS = 64
_RECV = 16384
_MAX_LINE = 1 << 20  # a longer line without a newline closes the session


class StatsSocketError(Exception):
    """A ``stats socket`` that cannot be bound; the message is HAProxy's alert."""


@dataclass(slots=True)
class BoundSocket:
    config: StatsSocket
    sock: socket.socket


def _bind_unix(spec: StatsSocket) -> socket.socket:
    path = spec.path
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise StatsSocketError(f"cannot bind UNIX socket [{path}]: not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens on it
        else:
            raise StatsSocketError(f"cannot bind UNIX socket [{path}]: in use by another process")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if spec.mode is not None:
            os.chmod(path, spec.mode)
        if spec.user is not None or spec.group is not None:
            os.chown(path, _id(spec.user, pwd.getpwnam), _id(spec.group, grp.getgrnam))
        sock.listen(16)
    except (OSError, KeyError) as error:
        sock.close()
        raise StatsSocketError(f"cannot bind UNIX socket [{path}]: {error}") from error
    return sock


def _id(name: str | None, lookup: Callable[[str], object]) -> int:
    if name is None:
        return -1
    if name.isdigit():
        return int(name)
    found = lookup(name)
    return int(getattr(found, "pw_uid", getattr(found, "gr_gid", -1)))


def _bind_tcp(spec: StatsSocket) -> socket.socket:
    family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((spec.host, spec.port))
        sock.listen(16)
    except OSError as error:
        sock.close()
        raise StatsSocketError(
            f"cannot bind socket for stats socket [{spec.host}:{spec.port}]: {error.strerror}"
        ) from error
    return sock


def bind_stats_sockets(config: Config) -> list[BoundSocket]:
    """Bind every ``stats socket`` (rule 1); raises ``StatsSocketError`` naming the first
    that fails, after closing those already bound."""
    bound: list[BoundSocket] = []
    try:
        for spec in config.global_.stats_sockets:
            sock = _bind_unix(spec) if spec.path else _bind_tcp(spec)
            bound.append(BoundSocket(spec, sock))
    except StatsSocketError as error:
        for done in bound:
            done.sock.close()
            if done.config.path:
                with contextlib.suppress(OSError):
                    os.unlink(done.config.path)
        raise StatsSocketError(f"Starting stats socket [{spec.location}]: {error}") from error
    return bound


class RuntimeApiServer:
    """Serves the bound sockets (module rules). ``config`` gives the configuration in use now
    (it changes on reload); ``control`` is made in the serving threads' process."""

    def __init__(
        self,
        sockets: Sequence[BoundSocket],
        config: Callable[[], Config],
        control: Callable[[], RuntimeControl],
        host: HostInfo,
    ) -> None:
        self._sockets = list(sockets)
        self._config = config
        self._make_control = control
        self._control: RuntimeControl | None = None
        self._host = host
        self._stopping = threading.Event()
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        self._lock = threading.Lock()
        self._greenlets = Group()  # accept loops and sessions (rule 5)

    def start(self) -> None:
        for bound in self._sockets:
            self._greenlets.spawn(self._accept_loop, bound)

    def stop(self) -> None:
        self._stopping.set()
        for bound in self._sockets:
            with contextlib.suppress(OSError):
                bound.sock.shutdown(socket.SHUT_RDWR)
            bound.sock.close()
            if bound.config.path:
                with contextlib.suppress(OSError):
                    os.unlink(bound.config.path)

    def abandon(self) -> None:
        """In a forked child (a gunicorn worker): stop serving, leaving the master's sockets
        serving and its files in place (rule 5)."""
        self._stopping.set()
        self._greenlets.kill(block=False)  # a session's own socket is closed as it ends
        for bound in self._sockets:
            with contextlib.suppress(OSError):
                bound.sock.close()  # this process's descriptor only: the master's listens on

    def _control_now(self) -> RuntimeControl:
        with self._lock:
            if self._control is None:
                self._control = self._make_control()
            return self._control

    def _accept_loop(self, bound: BoundSocket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = bound.sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.1)
                continue
            if not self._sessions.acquire(blocking=False):
                client.close()
                continue
            self._greenlets.spawn(self._serve, client, bound.config)

    def _serve(self, client: socket.socket, spec: StatsSocket) -> None:
        try:
            ctx = Context(self._control_now(), self._config, self._host, time.time)
            session = Session(ctx, Level[spec.level.upper()], self._config().global_.stats_timeout)
            self._converse(client, session)
        except Exception:
            log.exception("stats socket: unexpected error in a session")
        finally:
            with contextlib.suppress(OSError):
                client.close()
            self._sessions.release()

    def _converse(self, client: socket.socket, session: Session) -> None:
        pending = b""
        while not session.closed:
            while b"\n" not in pending:
                client.settimeout(session.timeout)
                try:
                    data = client.recv(_RECV)
                except (TimeoutError, OSError):
                    return
                if not data:
                    if pending:  # a last command without its newline, as socat may send
                        client.sendall(session.handle_line(pending.decode("utf-8", "replace"))
                                       .encode())
                    return
                pending += data
                if len(pending) > _MAX_LINE:
                    return
            line, pending = pending.split(b"\n", 1)
            answer = session.handle_line(line.decode("utf-8", "replace"))
            try:
                client.sendall(answer.encode())
            except OSError:
                return
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
