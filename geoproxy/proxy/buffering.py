"""``option http-buffer-request``: wait for the request body before choosing a server.

Rules (HAProxy 2.6's ``http_wait_for_msg_body()``):
1. The body is read from the client before the backend's server is chosen, until it ends or
   until the buffer is full (``tune.bufsize`` less HAProxy's 1024-byte rewrite reserve); what
   did not fit is then forwarded as it comes, so memory stays bounded (DESIGN.md invariant 6).
2. The forwarder then reads the buffered bytes first, then the rest of the body from the
   client, through the same ``read(size)`` it always uses.
"""

from __future__ import annotations

from typing import Any, Protocol


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class BufferedBody:
    """``wsgi.input`` whose first bytes were read ahead (rule 2)."""

    __slots__ = ("_buffered", "_rest", "_rest_done")

    def __init__(self, buffered: bytes, rest: _Readable, rest_done: bool) -> None:
        self._buffered = buffered
        self._rest = rest
        self._rest_done = rest_done

    def read(self, size: int = -1, /) -> bytes:
        if self._buffered:
            if size is None or size < 0:
                data, self._buffered = self._buffered, b""
                return data + (b"" if self._rest_done else self._rest.read())
            data, self._buffered = self._buffered[:size], self._buffered[size:]
            return data
        if self._rest_done:
            return b""
        return self._rest.read(size)

    def readline(self, size: int = -1, /) -> bytes:
        return self.read(size if size is not None and size >= 0 else 1)

    @property
    def is_consumed(self) -> bool:
        consumed: bool = getattr(self._rest, "is_consumed", True)
        return not self._buffered and (self._rest_done or consumed)

    @property
    def continue_sent(self) -> bool:
        sent: bool = getattr(self._rest, "continue_sent", False)
        return sent


def buffer_body(environ: dict[str, Any], limit: int) -> None:
    """Read up to ``limit`` bytes of the request body now (rule 1) and put a ``BufferedBody``
    in ``environ``. Raises what reading the client raises (``ClientGone``)."""
    body = environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    ended = False
    while size < limit:
        data = body.read(limit - size)
        if not data:
            ended = True
            break
        parts.append(data)
        size += len(data)
    environ["wsgi.input"] = BufferedBody(b"".join(parts), body, ended)
