"""Scripted raw-socket servers and real gunicorn environs for the forward tests.

``ScriptedServer`` listens on 127.0.0.1 and runs a handler per accepted connection, each in its
own thread, so a test can script a well-behaved keep-alive server as easily as one that
misbehaves (urllib3's test_socketlevel.py). ``gunicorn_environ`` builds the WSGI environ the way
gunicorn does, from raw request bytes, with gunicorn's own parser.
"""

from __future__ import annotations

import io
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from geoproxy.forward import (
    KEEP,
    BodyReader,
    Keep,
    ServerPool,
    UpstreamResponse,
    build_request_head,
    send,
)

Handler = Callable[[socket.socket], None]


class ScriptedServer:
    """A loopback server running ``handler(conn)`` in a thread per connection.

    ``accepted`` counts connections. ``stop`` (or leaving the ``with`` block) closes the
    listener and every connection, and joins every thread within a bounded time.
    """

    def __init__(self, handler: Handler, *, backlog: int = 64) -> None:
        self.handler = handler
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(timeout=5)
        for conn in self._conns:
            conn.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            self.accepted += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass  # the client went away or stop() shut the connection: the script ends
        finally:
            conn.close()


@dataclass
class Request:
    head: bytes
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Reader:
    """Reads requests from one server-side connection, keeping bytes that follow one."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buf = b""

    def read_head(self) -> bytes | None:
        """The next request head (without its blank line); None if the client closed first."""
        while b"\r\n\r\n" not in self.buf:
            data = self.conn.recv(65536)
            if not data:
                if self.buf:
                    raise ConnectionError("closed inside a request head")
                return None
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def read_request(self, *, keep_body: bool = True) -> Request | None:
        head = self.read_head()
        if head is None:
            return None
        headers = [
            (name.decode("latin-1"), value.decode("latin-1").strip())
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        ]
        request = Request(head, headers, b"")
        if (request.header("transfer-encoding") or "").lower().endswith("chunked"):
            request.body = self.read_chunked()
        else:
            request.body = self.read_exact(int(request.header("content-length") or 0), keep_body)
        return request

    def read_exact(self, size: int, keep: bool = True) -> bytes:
        parts = [self.buf[:size]]
        got = len(parts[0])
        self.buf = self.buf[size:]
        while got < size:
            data = self.conn.recv(min(size - got, 1 << 20))
            if not data:
                raise ConnectionError("closed inside a request body")
            got += len(data)
            if keep:
                parts.append(data)
        return b"".join(parts) if keep else b""

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.conn.recv(65536)
            if not data:
                raise ConnectionError("closed inside a chunked body")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_chunked(self) -> bytes:
        parts = []
        while size := int(self.read_line().split(b";")[0], 16):
            parts.append(self.read_exact(size))
            if self.read_line() != b"":
                raise ConnectionError("chunk not followed by CRLF")
        while self.read_line():
            pass
        return b"".join(parts)


def response(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    reason: str = "OK",
    length: bool = True,
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def keep_alive(
    respond: Callable[[Request], bytes], *, seen: list[Request] | None = None
) -> Handler:
    """A handler serving requests on one connection until the client closes it."""

    def handler(conn: socket.socket) -> None:
        reader = Reader(conn)
        while (request := reader.read_request()) is not None:
            if seen is not None:
                seen.append(request)
            conn.sendall(respond(request))

    return handler


def gunicorn_environ(raw: bytes) -> dict[str, Any]:
    """The WSGI environ gunicorn builds for the request ``raw`` (its body in ``wsgi.input``)."""
    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.parser import RequestParser

    cfg = Config()
    request = next(RequestParser(cfg, [raw], ("127.0.0.1", 40000)))
    # gunicorn writes "100 Continue" to this socket when the request expects it
    here, there = socket.socketpair()
    try:
        _, environ = wsgi.create(request, here, ("127.0.0.1", 40000), ("127.0.0.1", 8080), cfg)
    finally:
        here.close()
        there.close()
    environ["wsgi.errors"] = io.StringIO()
    return dict(environ)


def forward(
    pool: ServerPool,
    raw: bytes,
    *,
    body: BodyReader | None = None,
    cookie: str | None | Keep = KEEP,
    server_close: bool = False,
    connect_timeout: float | None = 2.0,
    server_timeout: float | None = 5.0,
) -> UpstreamResponse:
    """Send the client request ``raw`` (as gunicorn parsed it) to ``pool``'s server.

    The body comes from gunicorn's ``wsgi.input`` unless ``body`` is given.
    """
    environ = gunicorn_environ(raw)
    head, framing = build_request_head(environ, cookie=cookie, append=(), server_close=server_close)
    return send(
        pool,
        head,
        framing,
        environ["wsgi.input"] if body is None else body,
        connect_timeout=connect_timeout,
        server_timeout=server_timeout,
        is_head=environ["REQUEST_METHOD"] == "HEAD",
    )


def read_body(upstream: UpstreamResponse) -> bytes:
    """The whole body of ``upstream``, which is then closed."""
    try:
        return b"".join(upstream)
    finally:
        upstream.close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
