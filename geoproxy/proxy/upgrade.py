"""Protocol switches (``Connection: upgrade``, WebSocket): what the app hands the worker.

A WSGI app cannot tunnel bytes: only the server loop owns the client's socket. So the switch
is a hand-off, in three steps:
1. The worker offers: it puts ``UPGRADE_OFFER`` in the environ of an HTTP/1.1 request that asks
   to switch protocols (``Connection: upgrade`` and an ``Upgrade`` header), and only then does
   the app forward the Upgrade header (elsewhere, e.g. under plain gunicorn, such a request is
   served as a plain request, its Upgrade stripped as a hop-by-hop header).
2. The app answers: when the server answers ``101 Switching Protocols``, the app starts the
   response with the 101's head (persistence applied: an inserted cookie rides on it) and
   returns a ``SwitchedBody``. Any other answer is a plain response, and the connection goes
   on as HTTP. A 101 to a request that did not ask to switch is a 502.
3. The worker tunnels: it writes the 101 head, takes the server's socket with ``tunnel()``,
   copies bytes both ways until either side is done or ``timeout tunnel`` passes with no
   traffic, reports with ``count_tunnelled``, and calls ``close()``, which closes the server's
   socket, counts the traffic, logs the session and releases the lease: the server counts the
   tunnel in flight (leastconn, maxconn) for as long as it is open, as HAProxy counts it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from geoproxy.config.model import Timeouts
from geoproxy.forward import UpstreamResponse
from geoproxy.proxy.body import ProxiedBody, Traffic
from geoproxy.proxy.requestlog import LogNote
from geoproxy.state.store import FleetState, Lease

# environ key of the worker's offer to tunnel (rule 1)
UPGRADE_OFFER: Final = "geoproxy.upgrade"


def tunnel_timeout(frontend: Timeouts, backend: Timeouts) -> float | None:
    """``timeout tunnel``; when unset, the first of ``timeout client`` (the frontend's) and
    ``timeout server`` (the backend's) to expire on a tunnel idle both ways, as HAProxy applies
    each on its side. None: no limit."""
    if backend.tunnel is not None:
        return backend.tunnel
    sides = [value for value in (frontend.client, backend.server) if value is not None]
    return min(sides) if sides else None


@dataclass(frozen=True, slots=True)
class TunnelEnds:
    """What the worker tunnels the client to: the server's socket (still owned by the
    ``SwitchedBody``, which closes it), the bytes the server sent after its 101 head, and the
    idle timeout in seconds (None: no limit)."""

    server: socket.socket
    from_server: bytes
    timeout: float | None


class SwitchedBody(ProxiedBody):
    """The body of a 101 that the worker will tunnel (module doc, steps 2 and 3): empty."""

    __slots__ = ("_timeout", "_server", "_cut")

    def __init__(
        self,
        response: UpstreamResponse,
        fleet: FleetState,
        lease: Lease,
        sessions: set[ProxiedBody] | None,
        traffic: Traffic | None,
        note: LogNote | None,
        *,
        timeout: float | None,
    ) -> None:
        super().__init__(response, fleet, lease, sessions, traffic, note)
        self._timeout = timeout
        self._server: socket.socket | None = None
        self._cut: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def tunnel(self) -> TunnelEnds:
        """The server's end of the tunnel; ValueError if it was already taken or is gone."""
        sock, pending = self._response.detach()
        self._server = sock
        return TunnelEnds(sock, pending, self._timeout)

    def on_abort(self, cut: Callable[[], None]) -> None:
        """Have ``abort`` call ``cut``: the worker's way to end the tunnel it runs."""
        self._cut = cut

    def count_tunnelled(self, up: int, down: int, ending: str) -> None:
        """What the tunnel carried: ``up`` bytes client to server, ``down`` server to client,
        and how it ended (the log's termination state, see ``runtime.tunnel.TunnelReport``)."""
        self._sent += down
        if self._traffic is not None:
            self._traffic = dataclasses.replace(
                self._traffic, bytes_in=self._traffic.bytes_in + up
            )
        self._ending = ending

    def abort(self) -> None:
        """``on-marked-down shutdown-sessions``: end the tunnel, both ways."""
        if self._cut is not None:
            self._cut()
        server = self._server
        if server is None:
            super().abort()
            return
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.close()
        super().close()
