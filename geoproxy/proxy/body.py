"""The response body the app hands the server loop: the server's body, streamed, and on
``close()`` the end of the request (DESIGN.md step 7): the connection back to its pool, the
traffic counted, the lease released, the log line written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from geoproxy.errors import UpstreamError
from geoproxy.forward import UpstreamResponse
from geoproxy.proxy.requestlog import LogNote
from geoproxy.state.store import FleetState, Lease


@dataclass(frozen=True, slots=True)
class Traffic:
    """What the statistics count of one request: its frontend, the bytes forwarded to the
    server (head and declared body) and the response head's bytes."""

    frontend: str
    bytes_in: int
    head_out: int


class ProxiedBody:
    """The response body handed to gunicorn: streams the server's body, and on ``close()``
    returns the connection to its pool, counts the traffic and releases the lease."""

    __slots__ = (
        "_response", "_fleet", "_lease", "_closed", "_sessions", "_traffic", "_sent", "_note",
        "_ending", "_after",
    )  # fmt: skip

    def __init__(
        self,
        response: UpstreamResponse,
        fleet: FleetState,
        lease: Lease,
        sessions: set[ProxiedBody] | None = None,
        traffic: Traffic | None = None,
        note: LogNote | None = None,
    ) -> None:
        self._response = response
        self._fleet = fleet
        self._lease = lease
        self._closed = False
        self._sessions = sessions
        self._traffic = traffic
        self._sent = 0
        self._note = note
        # the log's termination state if the body does not end normally: the client left
        self._ending = "CD"
        self._after: Callable[[int, int], None] | None = None
        if sessions is not None:
            sessions.add(self)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._response:
                self._sent += len(chunk)
                yield chunk
        except UpstreamError as error:
            self._ending = "SD" if error.status != 504 else "sD"
            raise
        self._ending = "--"

    def after_close(self, callback: Callable[[int, int], None]) -> None:
        """Call ``callback(bytes_in, bytes_out)`` once the request is over (stick counters)."""
        self._after = callback

    def abort(self) -> None:
        """Cut the connection to the server (``on-marked-down shutdown-sessions``): the body
        being streamed ends with an error, and the client's connection is cut."""
        self._response.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sessions is not None:
            self._sessions.discard(self)
        try:
            self._response.close()
        finally:
            traffic = self._traffic
            if traffic is not None:
                self._fleet.count_traffic(
                    self._lease, traffic.frontend, traffic.bytes_in, traffic.head_out + self._sent
                )
            self._fleet.release(self._lease)
            note = self._note
            if note is not None:
                head = traffic.head_out if traffic is not None else 0
                note.finish(self._response.status, head + self._sent, self._ending)
            after = self._after
            if after is not None:
                self._after = None
                head = traffic.head_out if traffic is not None else 0
                after(traffic.bytes_in if traffic is not None else 0, head + self._sent)
