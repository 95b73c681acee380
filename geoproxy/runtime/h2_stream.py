"""One HTTP/2 stream: its request read from a header list, served by the WSGI app like an
HTTP/1.1 request, its response written as HEADERS and DATA frames.

Rules:
1. A malformed request (RFC 9113 8.1.1, 8.2, 8.3) is refused with ``RST_STREAM
   PROTOCOL_ERROR``, as HAProxy 2.6 refuses it: a pseudo-header field other than ``:method``,
   ``:scheme``, ``:path``, ``:authority``, repeated, empty, or after a regular field; a missing
   ``:method``, or ``:scheme``/``:path`` missing on a request other than CONNECT; a field name
   with upper case, a space or a colon; a connection-specific field (Connection, Keep-Alive,
   Proxy-Connection, Transfer-Encoding, Upgrade, and TE other than ``trailers``); a value
   holding CR, LF or NUL; more fields than ``tune.http.maxhdr`` allows. (The header list's size
   is bounded before this, by the HPACK decoder: see ``h2_connection``.)
2. The request becomes what the HTTP/1.1 loop would have made of it: ``:method`` the method;
   the target is ``:scheme://:authority:path`` (absolute-form, as HAProxy 2.6 builds it and
   logs it; the server gets the origin-form) or ``:path`` without ``:authority``;
   ``:authority`` is the Host, first among the fields (it replaces a ``host`` field); several
   ``cookie`` fields are joined with ``; `` (RFC 9113 8.2.3), other repeated fields with ``, ``;
   names holding ``_`` are dropped, as HTTP/1.1's. A request with a body and no content-length
   goes to the server chunked (the forwarder re-frames it). ``SERVER_PROTOCOL`` is ``HTTP/2.0``:
   the log line's request shows it, as HAProxy's does.
3. The response: ``:status``, then the app's headers lower-cased, without the connection-
   specific ones (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade), which
   HTTP/2 forbids. No body for HEAD, 204 and 304. A content-length bounds the body: a longer
   one is cut at it, a shorter one resets the stream (the client must not take it as whole).
   A header holding CR, LF or NUL is never sent: the response becomes a 500.
4. Failures, as the HTTP/1.1 loop's: a client that went away (the stream reset, its body cut)
   ends the stream; a server cut mid-response resets it with ``INTERNAL_ERROR`` (HAProxy's
   cut); an app error before the head answers 500, after it resets the stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gevent.event import Event

from geoproxy.config.model import RequestLimits
from geoproxy.errors import ClientGone, UpstreamError
from geoproxy.proxy.errorpages import builtin_page
from geoproxy.runtime.http1 import EMPTY_BODY, READ_SIZE, EmptyBody, environ_key, read_line
from geoproxy.runtime.http1_response import HeaderError, Response
from geoproxy.runtime.request_environ import request_environ

PROTOCOL: Final = "HTTP/2.0"
# RFC 9113 8.2.2; the response's are dropped, the request's refused (rules 1, 3)
CONNECTION_SPECIFIC: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
_PSEUDO: Final = frozenset({b":method", b":scheme", b":path", b":authority"})
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_BAD_NAME_BYTES: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ :\r\n\0")
_ERROR_PAGE: Final = builtin_page(500)


class StreamSink(Protocol):
    """What a stream needs of its connection (``h2_connection.H2Server``)."""

    worker: Any
    base: dict[str, Any]
    client_timeout: float | None

    def send_headers(self, stream: Stream, headers: list[tuple[bytes, bytes]],
                     end: bool, flush: bool = True) -> None: ...

    def send_data(self, stream: Stream, data: bytes, end: bool) -> None: ...

    def reset(self, stream: Stream, code: int) -> None: ...

    def consumed(self, stream: Stream, size: int) -> None: ...

    def start_draining(self) -> None: ...


@dataclass(slots=True)
class StreamRequest:
    """A request as its header list gave it (rule 2)."""

    method: str
    target: str
    fields: dict[str, str]


def parse_request(headers: list[tuple[bytes, bytes]], limits: RequestLimits,
                  has_body: bool) -> StreamRequest | None:
    """The request of a header list, or None when it is malformed (rule 1)."""
    pseudo: dict[bytes, bytes] = {}
    fields: dict[str, str] = {"HTTP_HOST": ""}  # first, as HAProxy puts it (rule 2)
    regular = 0
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\0" in value or not name:
            return None
        if name[0] == 0x3A:  # ":"
            if regular or name not in _PSEUDO or name in pseudo or not value:
                return None
            pseudo[name] = value
            continue
        regular += 1
        if regular > limits.max_fields or not _BAD_NAME_BYTES.isdisjoint(name):
            return None
        text_name = name.decode("latin-1")
        if text_name in CONNECTION_SPECIFIC or (text_name == "te" and value != b"trailers"):
            return None
        key = environ_key(name)
        if not key:
            continue
        text = value.decode("latin-1").strip(" \t")
        previous = fields.get(key)
        if previous:
            if key == "HTTP_HOST":
                return None  # two hosts: routing would read one, the server another
            if not text:
                continue
            text = previous + ("; " if key == "HTTP_COOKIE" else ", ") + text
        fields[key] = text
    method = pseudo.get(b":method")
    if method is None:
        return None
    if method == b"CONNECT":
        if b":scheme" in pseudo or b":path" in pseudo or b":authority" not in pseudo:
            return None
        target = pseudo[b":authority"]
    else:
        if b":scheme" not in pseudo or b":path" not in pseudo:
            return None
        target = pseudo[b":path"]
    authority = pseudo.get(b":authority")
    if authority is not None:
        fields["HTTP_HOST"] = authority.decode("latin-1")
        if method != b"CONNECT" and target != b"*":
            target = pseudo[b":scheme"] + b"://" + authority + target
    elif not fields["HTTP_HOST"]:
        del fields["HTTP_HOST"]
    if has_body and "CONTENT_LENGTH" not in fields:
        fields["HTTP_TRANSFER_ENCODING"] = "chunked"  # re-framed for the server (rule 2)
    return StreamRequest(method.decode("latin-1"), target.decode("latin-1"), fields)


class Stream:
    """One stream's state, shared by the connection's reader and the stream's greenlet."""

    __slots__ = ("id", "chunks", "ended", "cancelled", "wakeup", "greenlet", "in_app",
                 "began", "head_sent", "done")

    def __init__(self, stream_id: int, began: tuple[float, float]) -> None:
        self.id = stream_id
        self.chunks: deque[bytes] = deque()  # request body received, not yet read by the app
        self.ended = False  # the client ended its side (END_STREAM)
        self.cancelled = False  # the client reset the stream, or the connection is gone
        self.wakeup = Event()  # body data, its end, a window opened, a reset
        self.greenlet: Any = None
        self.in_app = False  # inside the app (may be killed) vs writing frames (may not)
        self.began = began
        self.head_sent = False
        self.done = False


class H2Body:
    """``wsgi.input`` of a stream: the DATA frames as they arrive. Each read hands the window
    back to the client (WINDOW_UPDATE as the app consumes the body). A client that resets
    the stream, or sends nothing for ``timeout client``, raises ``ClientGone``."""

    __slots__ = ("_sink", "_stream", "_buffer")
    continue_sent = False

    def __init__(self, sink: StreamSink, stream: Stream) -> None:
        self._sink = sink
        self._stream = stream
        self._buffer = b""

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            parts = []
            while data := self.read(READ_SIZE):
                parts.append(data)
            return b"".join(parts)
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        stream = self._stream
        while not stream.chunks:
            if stream.cancelled:
                raise ClientGone("the client reset the stream inside the request body")
            if stream.ended:
                return b""
            stream.wakeup.clear()
            if not stream.wakeup.wait(self._sink.client_timeout):
                raise ClientGone("no request body data within timeout client")
        data = stream.chunks.popleft()
        self._sink.consumed(stream, len(data))
        if len(data) > size:
            data, self._buffer = data[:size], data[size:]
        return data

    def readline(self, size: int = -1, /) -> bytes:
        """A WSGI requirement; geoproxy itself never reads lines."""
        return read_line(self.read, size)

    @property
    def is_consumed(self) -> bool:
        return self._stream.ended and not self._stream.chunks and not self._buffer


def serve_stream(sink: StreamSink, stream: Stream, request: StreamRequest) -> None:
    """Serve one stream's request through the app and write its response (rules 2 to 4)."""
    worker = sink.worker
    if not worker.count_request():
        sink.start_draining()  # max_requests: this one is served, then the connection ends
    body: H2Body | EmptyBody = EMPTY_BODY if stream.ended and not stream.chunks \
        else H2Body(sink, stream)
    environ = request_environ(sink.base, request.fields, request.method, request.target,
                              PROTOCOL, body, stream.began)
    response = Response()
    try:
        stream.in_app = True
        result = worker.wsgi(environ, response.start_response)
        try:
            _write(sink, stream, response, request.method, result)
        finally:
            stream.in_app = False  # its end (the lease released, the log line) runs whole
            close = getattr(result, "close", None)
            if close is not None:
                close()
            environ.clear()  # frees what the request left in it now (see the HTTP/1.1 loop)
    except ClientGone:
        sink.reset(stream, _CANCEL)
    except (UpstreamError, OSError, HeaderError) as error:
        if isinstance(error, HeaderError) and not stream.head_sent:
            _send_error_page(sink, stream)
        else:
            sink.reset(stream, _INTERNAL_ERROR)
    except Exception:
        if stream.head_sent:
            worker.log.exception("error after an HTTP/2 response started; stream reset")
            sink.reset(stream, _INTERNAL_ERROR)
        else:
            worker.log.exception("error while serving an HTTP/2 request")
            _send_error_page(sink, stream)


_CANCEL: Final = 0x8
_INTERNAL_ERROR: Final = 0x2


def _send_error_page(sink: StreamSink, stream: Stream) -> None:
    page = _ERROR_PAGE
    headers = [(b":status", page.status[:3].encode())] + [
        (name.lower().encode(), value.encode())
        for name, value in page.headers if name.lower() not in CONNECTION_SPECIFIC
    ]
    try:
        sink.send_headers(stream, headers, False, flush=False)
        sink.send_data(stream, page.body, True)
    except (ClientGone, OSError):
        pass


def _write(sink: StreamSink, stream: Stream, response: Response, method: str,
           result: Any) -> None:
    code = int(response.status[:3])
    headers, length = _head(response)
    if code < 200:
        raise HeaderError(f"interim status {code} as a final answer")
    chunks = iter(result)
    if method == "HEAD" or code in _NO_BODY_STATUSES:
        stream.in_app = False
        stream.head_sent = True
        sink.send_headers(stream, headers, True)
        return
    try:
        first = _next_piece(chunks)
    except UpstreamError:
        stream.in_app = False
        stream.head_sent = True
        sink.send_headers(stream, headers, False)  # as HAProxy: the head, then the cut
        raise
    stream.in_app = False
    stream.head_sent = True
    if length is not None and len(first) >= length:
        sink.send_headers(stream, headers, length == 0, flush=not length)
        if length:
            sink.send_data(stream, first[:length], True)
        _finish(stream, chunks)
        return
    sink.send_headers(stream, headers, False, flush=not first)
    remaining = None if length is None else length - len(first)
    data: bytes | None = first
    while data is not None:
        if data:
            sink.send_data(stream, data, False)
        stream.in_app = True
        data = next(chunks, None)
        stream.in_app = False
        if data is not None and remaining is not None:
            if len(data) >= remaining:
                sink.send_data(stream, data[:remaining], True)
                _finish(stream, chunks)
                return
            remaining -= len(data)
    if remaining:
        raise UpstreamError("the response body ended short of its content-length")
    sink.send_data(stream, b"", True)


def _finish(stream: Stream, chunks: Any) -> None:
    """Let a body whose length was sent end by itself (as the HTTP/1.1 writer does: a
    generator left suspended counts as a response the client cut)."""
    stream.in_app = True
    next(chunks, None)
    stream.in_app = False


def _next_piece(chunks: Any) -> bytes:
    for data in chunks:
        if data:
            return bytes(data)
    return b""


def _head(response: Response) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The response's HEADERS field list (rule 3), and its content-length if it has one."""
    headers = [(b":status", response.status[:3].encode("latin-1"))]
    length: int | None = None
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in CONNECTION_SPECIFIC:
            continue
        if "\r" in value or "\n" in value or "\0" in value or not name \
                or not _BAD_NAME_BYTES.isdisjoint(lowered.encode("latin-1")):
            raise HeaderError("CR, LF or NUL in the response head")
        if lowered == "content-length" and length is None:
            if not value.isdigit():
                raise HeaderError(f"content-length {value!r}")
            length = int(value)
        headers.append((lowered.encode("latin-1"), value.encode("latin-1")))
    return headers, length
