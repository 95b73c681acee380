"""The response side of HTTP/1.1: a WSGI app's answer written to the client.

Rules:
1. The status line is always ``HTTP/1.1`` (as HAProxy answers every HTTP/1.x client). No
   ``Server`` or ``Date`` header is added: the headers are the app's (the server's, as the
   forwarder handed them on), then, where HAProxy's H1 mux adds them at the end of the head,
   a ``connection`` line when the connection closes (or stays open for an HTTP/1.0 client)
   and a ``transfer-encoding`` line when the body is chunked.
2. The app's own ``Connection``, ``Keep-Alive`` and ``Transfer-Encoding`` headers are not
   written: framing is decided here. An app ``Connection: close`` (HAProxy's own 400 page and
   errorfiles carry one) closes the client connection after the response and is written where
   the app put it, as HAProxy sends those pages.
3. Framing: no body for HEAD, 1xx, 204 and 304; else the app's ``Content-Length`` (a body that
   ends short closes the connection, a longer one is cut at the length); else chunked for an
   HTTP/1.1 client, unless the app said ``Connection: close`` (an errorfile without a
   length); else the body ends when the connection closes.
4. The head and the first piece of the body leave in one ``sendall``.
5. A header line holding CR, LF or NUL is never written (DESIGN.md invariant 7): the response
   becomes a 500.
6. A ``101 Switching Protocols`` that the worker tunnels is written by ``write_switch``: the
   app's headers as they are, Connection and Upgrade included (they describe the switch), and
   no framing header: what follows the head is the new protocol's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from geoproxy.errors import UpstreamError
from geoproxy.runtime.http1 import ClientReader, Request

_NO_BODY_STATUSES: Final = frozenset({204, 304})
_LAST_CHUNK: Final = b"0\r\n\r\n"
# lengths of the header names this module interprets: only those names are lower-cased
_CONNECTION, _KEEP_ALIVE, _CONTENT_LENGTH, _TRANSFER_ENCODING = 10, 10, 14, 17
_INTERPRETED_LENGTHS: Final = frozenset({_CONNECTION, _CONTENT_LENGTH, _TRANSFER_ENCODING})


class HeaderError(ValueError):
    """The app's status or headers cannot be written (rule 5)."""


class Response:
    """One request's ``start_response``, then what writing the response decided."""

    __slots__ = ("status", "headers", "head_sent", "close")

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.close = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.head_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = status
        self.headers = headers
        return self._write

    @staticmethod
    def _write(data: bytes) -> None:
        raise NotImplementedError("geoproxy's worker does not support WSGI's write()")

    def write(self, client: ClientReader, request: Request, body: Iterable[bytes]) -> None:
        """Write the whole response; ``close`` tells whether the connection must close after.

        Raises what the body raises (the connection must then be cut if ``head_sent``), OSError
        when the client fails, ``HeaderError`` by rule 5 (nothing sent).
        """
        code = int(self.status[:3])
        head, length, chunked = self._head(request, code)
        chunks = iter(body)
        if request.method == "HEAD" or code < 200 or code in _NO_BODY_STATUSES:
            self._send_head(client, head)
            return
        try:
            first = _first_piece(chunks)
        except UpstreamError:
            self._send_head(client, head)  # as HAProxy, which relays the head at once, then cuts
            raise
        if length is not None:
            self._send_length(client, head, first, chunks, length)
        elif chunked:
            framed = b"%x\r\n%b\r\n" % (len(first), first) if first else b""
            self._send_head(client, head + framed)
            for data in chunks:
                if data:
                    client.sendall(b"%x\r\n%b\r\n" % (len(data), data))
            client.sendall(_LAST_CHUNK)
        else:
            self._send_head(client, head + first)
            for data in chunks:
                client.sendall(data)

    def write_switch(self, client: ClientReader) -> None:
        """Write a 101's head (rule 6). Raises ``HeaderError`` (nothing sent), OSError."""
        lines = ["HTTP/1.1 ", self.status, "\r\n"]
        for name, value in self.headers:
            lines += (name, ": ", value, "\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        expected = len(self.headers) + 2
        if text.count("\n") != expected or text.count("\r") != expected or "\0" in text:
            raise HeaderError("CR, LF or NUL in the response head")
        self._send_head(client, text.encode("latin-1"))

    def _send_head(self, client: ClientReader, data: bytes) -> None:
        self.head_sent = True
        client.sendall(data)

    def _send_length(
        self, client: ClientReader, head: bytes, first: bytes, chunks: Iterator[bytes], length: int
    ) -> None:
        remaining = length - len(first)
        if remaining < 0:
            first = first[:length]
        self._send_head(client, head + first)
        if remaining == 0:
            # let the body end by itself: a generator left suspended is closed later by a
            # GeneratorExit thrown through its frames, which costs more than this
            next(chunks, None)
            return
        while remaining > 0:
            data = next(chunks, None)
            if data is None:
                self.close = True  # the body ended short: the client must see a close
                return
            if len(data) > remaining:
                data = data[:remaining]
            remaining -= len(data)
            client.sendall(data)

    def _head(self, request: Request, code: int) -> tuple[bytes, int | None, bool]:
        """The head's bytes, the body's length if the app gave one, and whether it is chunked."""
        lines = ["HTTP/1.1 ", self.status, "\r\n"]
        length: int | None = None
        written = 0
        own_close = False
        for name, value in self.headers:
            if len(name) in _INTERPRETED_LENGTHS:
                lowered = name.lower()
                if lowered == "connection" and "close" in value.lower() and not own_close:
                    # HAProxy's own pages and errorfiles carry it: it stays where they put it
                    self.close = own_close = True
                    lines += (name, ": close\r\n")
                    written += 1
                    continue
                if lowered == "connection" or lowered == "keep-alive":
                    continue
                if lowered == "transfer-encoding":
                    continue
                if lowered == "content-length" and length is None:
                    if not value.isdigit():
                        raise HeaderError(f"content-length {value!r}")
                    length = int(value)
            lines += (name, ": ", value, "\r\n")
            written += 1
        no_body = request.method == "HEAD" or code < 200 or code in _NO_BODY_STATUSES
        # an app's own close without a length (an errorfile that has none): the body ends
        # with the connection, as HAProxy sends it, rather than chunked
        chunked = length is None and not no_body and request.version == "1.1" and not own_close
        if length is None and not no_body and not chunked:
            self.close = True  # rule 3: an HTTP/1.0 client reads until the close
        if not request.keep_alive:
            self.close = True
        extra = 0
        if self.close and not own_close:
            lines.append("connection: close\r\n")
            extra = 1
        elif request.version == "1.0":
            lines.append("connection: keep-alive\r\n")
            extra = 1
        if chunked:
            lines.append("transfer-encoding: chunked\r\n")
            extra += 1
        lines.append("\r\n")
        text = "".join(lines)
        expected = written + extra + 2
        if text.count("\n") != expected or text.count("\r") != expected or "\0" in text:
            raise HeaderError("CR, LF or NUL in the response head")
        return text.encode("latin-1"), length, chunked


def _first_piece(chunks: Iterator[bytes]) -> bytes:
    for data in chunks:
        if data:
            return data
    return b""
