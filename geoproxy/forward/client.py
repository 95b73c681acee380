"""One request to one server: send it, stream its body, return the response head.

Rules:

1. A request whose bytes may have reached a server is never sent again (DESIGN.md invariant
   5), with one exception, as HAProxy and urllib3 make it: a request WITHOUT a body, sent on a
   REUSED idle connection which the server closes (or resets) before a single response byte,
   is sent once more, on a freshly opened connection. The server most likely closed that
   connection while it sat idle, and the request was never processed; but a server that died
   while processing it looks the same, so the resend is only for idempotent methods (RFC 9110
   9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE); RFC 9112 9.3.1 forbids a proxy to retry any
   other on its own, and a body-less POST then gets the 502 of a fresh connection.
2. The request body streams: it is read from the client in pieces of at most ``CHUNK_SIZE``
   bytes, each sent before the next one is read. The head goes out with the first piece in one
   ``sendall``. That piece is read once a connection is taken (a ``ConnectFailed`` leaves the
   body unread, so the caller can retry elsewhere); if the client fails before it, the
   connection goes back to the pool untouched.
3. A server may answer before the whole body is sent (413, 401, ...). The connection is polled
   between two pieces; a final response stops the upload and is returned; an interim one is
   dropped. When sending fails, or stalls, the response is read the same way. Such a
   connection is never reused.
4. Errors are classified where they happen: ``ConnectFailed`` (nothing was sent),
   ``ServerTimeout``, ``BadResponse``, ``ClientGone`` (reading the client's body failed). On any
   of them the connection is closed, never pooled.
"""

from __future__ import annotations

import time
from typing import Final, Protocol

from geoproxy.errors import BadResponse, ClientGone, ServerTimeout
from geoproxy.forward.pool import Connection, ServerPool
from geoproxy.forward.request_head import BodyFraming, Framing
from geoproxy.forward.response import (
    CHUNK_SIZE,
    ResponseHead,
    ServerClosed,
    UpstreamResponse,
    parse_head,
    read_head,
)

_MAX_INTERIM: Final = 10
# the methods whose request a proxy may repeat on its own (rule 1)
_IDEMPOTENT: Final = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
_LAST_CHUNK: Final = b"0\r\n\r\n"
# build_request_head puts this line last when it asks the server to close (its rule 6)
_ASKS_CLOSE: Final = b"\r\nconnection: close\r\n\r\n"


class BodyReader(Protocol):
    """What ``send`` needs of a request body (``wsgi.input``): ``read(size)`` returning at most
    ``size`` bytes, fewer only at the end of the body."""

    def read(self, size: int, /) -> bytes: ...


def send(
    pool: ServerPool,
    head: bytes,
    framing: BodyFraming,
    body: BodyReader | None,
    *,
    connect_timeout: float | None,
    server_timeout: float | None,
    is_head: bool,
) -> UpstreamResponse:
    """Send a request (``head`` from ``build_request_head``, then ``body`` framed as
    ``framing``) on a connection from ``pool``; return the final response, its body unread.

    Raises ``ConnectFailed``, ``ServerTimeout``, ``BadResponse`` or ``ClientGone`` (module rules).
    """
    request = _Request(head, framing, body, server_timeout, is_head)
    conn = pool.acquire(connect_timeout)
    try:
        request.read_first_piece()
    except BaseException:
        pool.release(conn)  # nothing was sent on it
        raise
    may_resend = conn.reused and not framing.has_body and head.partition(b" ")[0] in _IDEMPOTENT
    connected = time.monotonic()
    try:
        response = _exchange(pool, conn, request)
    except ServerClosed as exc:
        if not may_resend:
            raise BadResponse(f"server closed the connection before responding: {exc}") from exc
        conn = pool.connect(connect_timeout)
        connected = time.monotonic()
        try:
            response = _exchange(pool, conn, request)
        except ServerClosed as exc2:
            raise BadResponse(
                f"server closed the connection before responding: {exc2}"
            ) from exc2
    response.connected_at = connected
    return response


def _exchange(pool: ServerPool, conn: Connection, request: _Request) -> UpstreamResponse:
    try:
        conn.set_timeout(request.server_timeout)
        early, complete = _send_request(conn, request)
        if early is None and not conn.buffered:
            try:
                conn.wait_readable()
            except TimeoutError:
                raise ServerTimeout("timeout server waiting for the response head") from None
        head = early or _final_head(conn, request.is_head)
        reusable = complete and request.reusable
        return UpstreamResponse(pool, conn, head, request_complete=reusable)
    except BaseException:
        conn.close()
        raise


def _send_request(conn: Connection, request: _Request) -> tuple[ResponseHead | None, bool]:
    """Send the request; return (a final response that came before its end, whether all of
    the request was sent)."""
    if not _sent(conn, request.first):
        return None, False
    interims = 0
    while not request.done:
        if conn.has_input():
            head = parse_head(read_head(conn), is_head=request.is_head)
            if not head.is_interim:
                return head, False
            interims += 1
            if interims > _MAX_INTERIM:
                raise BadResponse("too many interim responses")
            continue
        if not _sent(conn, request.next_piece()):
            return None, False
    return None, True


def _sent(conn: Connection, data: bytes) -> bool:
    """Send ``data``; False when the server stopped reading and has something to say (an
    early response or a close), which the caller then reads."""
    try:
        conn.sendall(data)
    except TimeoutError:
        if conn.has_input():
            return False
        raise ServerTimeout("timeout server sending the request") from None
    except OSError:
        return False
    return True


def _final_head(conn: Connection, is_head: bool) -> ResponseHead:
    for count in range(_MAX_INTERIM + 1):
        try:
            raw = read_head(conn)
        except ServerClosed as exc:
            if count:
                raise BadResponse("connection closed after an interim response") from exc
            raise
        head = parse_head(raw, is_head=is_head)
        if not head.is_interim:
            return head
    raise BadResponse("too many interim responses")


class _Request:
    """One request on its way: its first bytes (head and first body piece), then the rest of
    the body as pieces of wire bytes read from the client on demand."""

    __slots__ = (
        "first",
        "server_timeout",
        "is_head",
        "reusable",
        "done",
        "_body",
        "_chunked",
        "_remaining",
    )

    def __init__(
        self,
        head: bytes,
        framing: BodyFraming,
        body: BodyReader | None,
        server_timeout: float | None,
        is_head: bool,
    ) -> None:
        self.first = head
        self.server_timeout = server_timeout
        self.is_head = is_head
        self.reusable = not head.endswith(_ASKS_CLOSE)
        self.done = not framing.has_body
        if body is None and not self.done:
            raise ValueError(f"{framing} needs a body")
        self._body = body
        self._chunked = framing.kind is Framing.CHUNKED
        self._remaining = framing.length

    def read_first_piece(self) -> None:
        """Append the first piece of the body to ``first``, so both leave in one ``sendall``."""
        if not self.done:
            self.first += self.next_piece()

    def next_piece(self) -> bytes:
        """Read the next piece of the body and return it framed; ``done`` after the last."""
        assert self._body is not None
        if self._chunked:
            data = _read(self._body, CHUNK_SIZE)
            if not data:
                self.done = True
                return _LAST_CHUNK
            return b"%x\r\n%b\r\n" % (len(data), data)
        size = min(self._remaining, CHUNK_SIZE)
        data = _read(self._body, size)
        while len(data) < size:
            more = _read(self._body, size - len(data))
            if not more:
                missing = self._remaining - len(data)
                raise ClientGone(f"client body ended {missing} bytes before its content-length")
            data += more
        self._remaining -= size
        self.done = self._remaining == 0
        return data


def _read(body: BodyReader, size: int) -> bytes:
    try:
        return body.read(size)
    except Exception as exc:  # whatever wsgi.input raises, the client is to blame
        raise ClientGone(f"reading the client's body failed: {exc!r}") from exc
