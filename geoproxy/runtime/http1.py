"""The client side of HTTP/1.1: requests read from a client socket, parsed by llhttp (httptools).

Rules:
1. llhttp parses strictly, in C: a request with both Content-Length and Transfer-Encoding, a
   repeated or non-numeric Content-Length, a Transfer-Encoding whose last coding is not chunked,
   a bad chunk size, a bare CR or LF, a NUL, CR or other control character in a header value,
   obs-fold, or whitespace before a colon is a ``RequestError`` (400). So is a version other than
   HTTP/1.0 and HTTP/1.1. Request smuggling needs two parsers that disagree on where a request
   ends; here the one parser that frames the request also frames what the server gets (the
   forwarder re-frames the de-chunked body itself).
2. A method llhttp does not know is accepted when it is a token (HAProxy forwards any token):
   the request is re-parsed with a stand-in method and keeps its own. This needs the request to
   start its read; a pipelined request with an unknown method behind another gets a 400. A
   short read holding only the start of a method is kept until the method's end arrives.
3. Limits, as HAProxy sizes a request (``RequestLimits``, from ``tune.bufsize`` and
   ``tune.http.maxhdr``): a request line that alone does not fit in the head's room is a 414;
   a head that does not fit, or more header fields than ``tune.http.maxhdr`` allows, a 431
   (HAProxy 2.6 answers 400 to all three). A field has no limit of its own but the head's.
4. Bytes are read from the client only when the request being served needs them (its head, or
   its body through ``wsgi.input``), at most ``READ_SIZE`` at a time: what a pipelining client
   sends ahead is parsed and queued, and memory stays bounded by one read.
5. Host (RFC 9112 3.2): a value that is not ``host[:port]`` (RFC 3986: a registered name,
   IPv4 or bracketed IP literal; no space, ``@``, ``/`` or control character) is a 400, and so
   are two Host fields that disagree (HAProxy 2.6 refuses the latter and forwards the former).
6. A header name holding ``_`` is dropped (gunicorn's default): ``X_Foo`` and ``X-Foo`` would
   map to the same WSGI key. Repeated fields are joined with ``, `` (Cookie with ``; ``).
   Trailer fields of a chunked body are read and dropped.
7. An HTTP/1.1 request with ``Connection: upgrade`` and an ``Upgrade`` header (llhttp's
   upgrade) is marked ``upgrade``, and parsing stops there: the bytes after its head are held
   unparsed, since they belong to the new protocol if the server switches (the worker then
   ``take_held``s them into the tunnel) and to the next request if it does not (the worker
   then ``resume``s parsing). Such a request with a body is a 400: llhttp does not frame it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import httptools

from geoproxy import watchdog
from geoproxy.config.model import RequestLimits
from geoproxy.errors import ClientGone
from geoproxy.netio import guarded_sendall, wait_readable

READ_SIZE: Final = 65536
# what a request line holds besides its target: "METHOD " and " HTTP/1.1\r\n"
_LINE_OVERHEAD: Final = 12
_STANDIN_METHOD: Final = b"GET"
_TOKEN_METHOD: Final = re.compile(rb"(?:\r\n)*([!#$%&'*+.^_`|~0-9A-Za-z-]+) ")
_METHOD_START: Final = re.compile(rb"(?:\r\n)*[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_METHOD_START_MAX: Final = 64  # a longer start is parsed as it is (an unknown one gets a 400)
_HOST: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?")
_CACHE_LIMIT: Final = 1024
# header name (as sent) -> WSGI environ key, or "" for a name that is dropped (rule 6)
_environ_keys: dict[bytes, str] = {}
# Host values seen valid (rule 5): a set lookup instead of a regex per request
_valid_hosts: set[str] = set()


class RequestError(Exception):
    """The client's bytes are not a request we serve; ``status`` is HAProxy's answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Request:
    """One request as parsed: head fields for the environ, and the body as it arrives."""

    __slots__ = (
        "method",
        "target",
        "version",
        "fields",
        "keep_alive",
        "expects_continue",
        "has_body",
        "complete",
        "chunks",
        "error",
        "field_count",
        "head_size",
        "upgrade",
    )

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.version = ""
        self.fields: dict[str, str] = {}
        self.keep_alive = False
        self.expects_continue = False
        self.has_body = False
        self.complete = False
        self.chunks: deque[bytes] = deque()
        self.error: RequestError | None = None
        self.field_count = 0
        self.head_size = 0
        self.upgrade = False  # rule 7


def environ_key(name: bytes) -> str:
    """The WSGI environ key of a header name, "" when the header is dropped (rule 6)."""
    key = _environ_keys.get(name)
    if key is None:
        text = name.decode("latin-1").upper()
        if "_" in text:
            key = ""
        elif text in ("CONTENT-TYPE", "CONTENT-LENGTH"):
            key = text.replace("-", "_")
        else:
            key = "HTTP_" + text.replace("-", "_")
        if len(_environ_keys) < _CACHE_LIMIT:
            _environ_keys[name] = key
    return key


class ClientReader:
    """Reads and parses the requests of one client connection (the parser's callbacks are
    its ``on_*`` methods), and writes to it; every read and write is bounded by ``timeout``
    (enforced by ``geoproxy.watchdog`` in a worker, else by the socket)."""

    __slots__ = (
        "sock",
        "timeout",
        "_guard",
        "limits",
        "ready",
        "closed",
        "error",
        "_parser",
        "_parsing",
        "_head_bytes",
        "_idle",
        "_begun",
        "_method",
        "_held",
        "_method_start",
    )

    def __init__(self, sock: Any, limits: RequestLimits) -> None:
        self.sock = sock
        self.timeout: float | None = sock.gettimeout()
        self._guard = watchdog.new_guard()
        if self._guard is not None:
            sock.settimeout(None)
        self.limits = limits
        self.ready: deque[Request] = deque()
        self.closed = False
        self.error: RequestError | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._parsing: Request | None = None
        self._head_bytes = 0
        self._idle = True  # between two requests: the next byte starts a request
        self._begun = 0  # requests begun so far
        self._method = ""  # the real method of the request re-parsed with a stand-in
        self._held: bytes | None = None  # bytes after an upgrade request's head (rule 7)
        self._method_start = b""  # the start of a method, waiting for its end (rule 2)

    # -- reading ------------------------------------------------------------------------------

    @property
    def has_pending_input(self) -> bool:
        """Whether a request (or the start of one, or an error) is already here."""
        return (
            bool(self.ready) or self.error is not None or not self._idle or bool(self._method_start)
        )

    def fill(self, answered: bool = False) -> bool:
        """Read once from the client and parse what came; False when the client closed.
        ``answered``: the client was just answered, so its next bytes cannot be here yet.

        Raises whatever ``recv`` raises (``TimeoutError`` after ``timeout``, OSError).
        """
        guard = self._guard
        if guard is None:
            data = self.sock.recv(READ_SIZE)
        else:
            guard.arm(self.timeout)
            try:
                if answered:
                    wait_readable(self.sock)
                data = self.sock.recv(READ_SIZE)
            finally:
                guard.disarm()
        if not data:
            self.closed = True
            return False
        self.feed(data)
        return True

    def set_timeout(self, timeout: float | None) -> None:
        if timeout != self.timeout:
            self.timeout = timeout
            if self._guard is None:
                self.sock.settimeout(timeout)

    def sendall(self, data: bytes) -> None:
        """Send ``data`` to the client; raises OSError (``TimeoutError`` after ``timeout``)."""
        guarded_sendall(self.sock, data, self._guard, self.timeout)

    def feed(self, data: bytes) -> None:
        """Parse ``data``; a parse error is kept in ``error`` (and in the request it broke)."""
        if self.error is not None:
            return
        if self._held is not None:
            self._held += data
            return
        at_boundary = self._idle
        if at_boundary:
            if self._method_start:
                data, self._method_start = self._method_start + data, b""
            if (
                len(data) < _METHOD_START_MAX
                and b" " not in data
                and _METHOD_START.fullmatch(data) is not None
            ):
                self._method_start = data  # rule 2: llhttp would refuse a method it does not
                return  # know yet
        begun = self._begun
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._after_upgrade(data[int(upgrade.args[0]) :])
            return  # the rest was fed (and checked) afresh
        except httptools.HttpParserInvalidMethodError:
            if at_boundary and self._begun == begun + 1:
                self._unknown_method(data)
                return  # fed (and checked) afresh
            self._fail(400, "invalid method")
        except httptools.HttpParserError as error:
            cause = error.__context__
            if isinstance(cause, RequestError):
                self._fail(cause.status, str(cause))
            else:
                self._fail(400, str(error))
        if not self._idle and self.error is None:
            # this read is all head when the head began it; a head begun behind another
            # request's bytes holds at most this read: it is counted from the next one
            whole = self._begun == begun or (at_boundary and self._begun == begun + 1)
            self._check_head_size(len(data) if whole else 0)

    def _check_head_size(self, received: int) -> None:
        """Rule 3 for a head still incomplete after this read. What llhttp holds of an
        unfinished field is bounded by the limit plus one read."""
        request = self._parsing
        if request is None or request.version:
            return
        self._head_bytes += received
        max_head = self.limits.max_head
        if len(request.target) + len(request.method) + _LINE_OVERHEAD > max_head:
            self._fail(414, "request line too long")
        elif self._head_bytes > max_head:
            self._fail(431, "request head too large")

    def _fail(self, status: int, reason: str) -> None:
        self.error = RequestError(status, reason)
        if self._parsing is not None and not self._parsing.complete:
            self._parsing.error = self.error

    def _after_upgrade(self, rest: bytes) -> None:
        """llhttp stops after an Upgrade (or CONNECT) head. An HTTP/1.1 upgrade holds what
        follows (rule 7); after an HTTP/1.0 one (RFC 9110 7.8: the server ignores Upgrade)
        what follows is the next request, parsed afresh. CONNECT is answered 405 and the
        connection closed, so its tunnel bytes are not read."""
        request = self._parsing
        if request is not None and request.method == "CONNECT":
            request.keep_alive = False
            self._fail(400, "bytes after CONNECT")
            return
        if request is not None and request.version == "1.1":
            if request.has_body:
                request.keep_alive = False
                request.error = self.error = RequestError(400, "upgrade request with a body")
                return
            request.upgrade = True
            self._held = rest
            return
        self._parser = httptools.HttpRequestParser(self)
        if rest:
            self.feed(rest)

    def take_held(self) -> bytes:
        """The bytes the client sent after an upgrade request's head, for the tunnel (rule 7);
        nothing is parsed from this connection any more."""
        held, self._held = self._held or b"", b""
        return held

    def resume(self) -> None:
        """Parse again after an upgrade request the server did not switch for (rule 7): what
        the client sent after its head is the next request."""
        held, self._held = self._held, None
        self._parser = httptools.HttpRequestParser(self)
        if held:
            self.feed(held)

    def _unknown_method(self, data: bytes) -> None:
        """Rule 2: the request that starts ``data`` is re-parsed with a stand-in method."""
        matched = _TOKEN_METHOD.match(data)
        if matched is None:
            self._fail(400, "invalid method")
            return
        self._parser = httptools.HttpRequestParser(self)
        self._parsing = None
        self._idle = True
        self._method = matched.group(1).decode("ascii")
        self.feed(_STANDIN_METHOD + data[matched.end(1) :])

    # -- llhttp's callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        request = self._parsing = Request()
        request.method, self._method = self._method, ""
        self._idle = False
        self._head_bytes = 0
        self._begun += 1

    def on_url(self, url: bytes) -> None:
        assert self._parsing is not None
        self._parsing.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._parsing
        assert request is not None
        if request.version:
            return  # a trailer field (rule 6)
        request.field_count += 1
        request.head_size += len(name) + len(value) + 4  # "NAME: VALUE\r\n"
        limits = self.limits
        if request.field_count > limits.max_fields or request.head_size > limits.max_head:
            raise RequestError(431, "too many or too large header fields")
        key = environ_key(name)
        if not key:
            return
        text = value.decode("latin-1").rstrip(" \t")
        fields = request.fields
        if key in fields:
            previous = fields[key]
            if key == "HTTP_HOST":
                # two Host fields name two hosts: routing would read one, the server another
                if text != previous:
                    raise RequestError(400, "repeated Host field")
                return
            if not text:
                return  # an empty line adds no element to the list
            if previous:
                text = previous + ("; " if key == "HTTP_COOKIE" else ", ") + text
        fields[key] = text

    def on_headers_complete(self) -> None:
        request = self._parsing
        assert request is not None
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise RequestError(400, f"HTTP version {version}")
        line = len(request.target) + len(request.method or parser.get_method()) + _LINE_OVERHEAD
        if line > self.limits.max_head:
            raise RequestError(414, "request line too long")
        if line + request.head_size + 2 > self.limits.max_head:
            raise RequestError(431, "request head too large")
        request.version = version
        if not request.method:
            request.method = parser.get_method().decode("ascii")
        request.keep_alive = parser.should_keep_alive()
        fields = request.fields
        host = fields.get("HTTP_HOST")
        if host is not None and host not in _valid_hosts:
            if _HOST.fullmatch(host) is None:
                raise RequestError(400, "invalid Host")
            if len(_valid_hosts) < _CACHE_LIMIT:
                _valid_hosts.add(host)
        if "HTTP_TRANSFER_ENCODING" in fields:
            request.has_body = True
            if version == "1.0":
                request.keep_alive = False  # RFC 9112 6.1: framing is faulty; close after
        elif fields.get("CONTENT_LENGTH", "0").lstrip("0"):
            request.has_body = True
        expect = fields.get("HTTP_EXPECT")
        request.expects_continue = (
            expect is not None and version == "1.1" and expect.lower() == "100-continue"
        )
        self.ready.append(request)

    def on_body(self, body: bytes) -> None:
        assert self._parsing is not None
        self._parsing.chunks.append(body)

    def on_message_complete(self) -> None:
        assert self._parsing is not None
        self._parsing.complete = True
        self._idle = True


def read_line(read: Callable[[int], bytes], size: int = -1) -> bytes:
    """A line of a request body read a byte at a time with ``read`` (WSGI's ``readline``; at
    most ``size`` bytes when it is not negative)."""
    line = b""
    while size < 0 or len(line) < size:
        data = read(1)
        if not data:
            break
        line += data
        if data == b"\n":
            break
    return line


class RequestBody:
    """``wsgi.input``: the request body, de-chunked, read from the client as it is asked for.

    ``read(size)`` returns at most ``size`` bytes (all the rest with no size), ``b""`` only at the
    end of the body. A client that closes or stalls (``timeout client``) before the end, or whose
    chunked framing breaks, raises ``ClientGone``: a body never looks complete when it is not.
    Sends ``100 Continue`` before the first read that must wait for the client, when the client
    asked for it.
    """

    __slots__ = ("_request", "_reader", "continue_sent", "_buffer")

    def __init__(self, request: Request, reader: ClientReader) -> None:
        self._request = request
        self._reader = reader
        self.continue_sent = False
        self._buffer = b""

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            return self._read_all()
        if self._buffer:
            data = self._buffer[:size]
            self._buffer = self._buffer[size:]
            return data
        chunks = self._request.chunks
        while not chunks:
            if self._request.complete:
                return b""
            self._wait()
        data = chunks.popleft()
        if len(data) > size:
            self._buffer = data[size:]
            data = data[:size]
        return data

    def _read_all(self) -> bytes:
        parts: list[bytes] = []
        while True:
            data = self.read(READ_SIZE)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def readline(self, size: int = -1, /) -> bytes:
        """A WSGI requirement; geoproxy itself never reads lines."""
        return read_line(self.read, size)

    def _wait(self) -> None:
        request, reader = self._request, self._reader
        if request.error is not None:
            raise ClientGone(f"invalid request body: {request.error}")
        if request.expects_continue and not self.continue_sent:
            self.continue_sent = True
            reader.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            received = reader.fill()
        except OSError as error:
            raise ClientGone(f"reading the request body failed: {error!r}") from error
        if not received:
            raise ClientGone("the client closed the connection inside the request body")
        if request.error is not None:
            raise ClientGone(f"invalid request body: {request.error}")

    @property
    def is_consumed(self) -> bool:
        return self._request.complete and not self._request.chunks and not self._buffer


class EmptyBody:
    """``wsgi.input`` of a request without a body."""

    __slots__ = ()
    is_consumed = True
    continue_sent = False

    def read(self, size: int = -1, /) -> bytes:
        return b""

    def readline(self, size: int = -1, /) -> bytes:
        return b""


EMPTY_BODY: Final = EmptyBody()
