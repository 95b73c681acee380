"""A demo HTTP/1.1 application server: ``python -m geoproxy.demo.backend --name s1 --port 9001``.

It serves ``geoproxy.demo.app.DemoApp`` with gevent's pywsgi (keep-alive, chunked request
bodies), and WebSocket echo sessions at ``/ws`` (``geoproxy.demo.websocket``), without an
access log so that it is not the bottleneck of a benchmark. SIGTERM (or SIGINT) stops it
cleanly: the listener closes, idle keep-alive connections close at once, and requests in
progress get ``--grace`` seconds to finish.
The line ``demo backend NAME listening on http://HOST:PORT`` on stdout says it is ready.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import gevent
import gevent.event
from gevent.pywsgi import WSGIHandler, WSGIServer

from geoproxy.demo import websocket
from geoproxy.demo.app import CONNECTION_KEY, DemoApp

# As http.client: a longer line or more fields make the request a 400.
MAX_LINE = 65536
MAX_FIELDS = 100


class RequestHead:
    """The request's header fields, read without the email package (a third of pywsgi's time
    per request). Offers the part of ``http.client.HTTPMessage`` that pywsgi's handler uses.

    ``status`` is empty, or says why the head is unusable (pywsgi then answers 400).
    """

    __slots__ = ("fields", "status", "_first")

    def __init__(self, fields: list[tuple[str, str]], status: str = "") -> None:
        self.fields = fields
        self.status = status
        self._first: dict[str, str] = {}
        for name, value in reversed(fields):
            self._first[name.lower()] = value

    @classmethod
    def read(cls, rfile: Any) -> RequestHead:
        fields: list[tuple[str, str]] = []
        for _ in range(MAX_FIELDS + 1):
            line: bytes = rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                return cls([], "Line too long")
            if line in (b"\r\n", b"\n", b""):
                return cls(fields)
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                return cls([], "Invalid header line")
            if text[0] in " \t" and fields:
                # obs-fold (RFC 9112 5.2): the line continues the previous field's value.
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                return cls([], "Invalid header line")
            fields.append((name, value.strip(" \t")))
        return cls([], "Too many headers")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    getheader = get

    def __delitem__(self, name: str) -> None:
        lower = name.lower()
        self.fields = [(n, v) for n, v in self.fields if n.lower() != lower]
        self._first.pop(lower, None)

    @property
    def headers(self) -> Iterator[str]:
        for name, value in self.fields:
            yield f"{name}: {value}\r\n"

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")

    def items(self) -> list[tuple[str, str]]:
        return list(self.fields)


class DemoHandler(WSGIHandler):  # type: ignore[misc]  # gevent ships no type hints
    """pywsgi's handler, one per connection, that counts connections, keeps the request head
    as received (pywsgi's environ upper-cases and merges header names) and sends each
    response's head together with its first chunk."""

    carried_traffic = False
    _holding_head = False
    _held_head: bytes | None = None

    idle = False

    def handle(self) -> None:
        server: DemoServer = self.server
        server.application.stats.accepted += 1
        # Head and body go out in separate writes when the body is streamed: without NODELAY,
        # Nagle holds the body back until the client's delayed ACK (40 ms).
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server.handlers.add(self)
        try:
            super().handle()
        finally:
            server.handlers.discard(self)

    def read_requestline(self) -> str:
        """Wait for the next request; none once the server is draining (the connection then
        closes after the answer in progress)."""
        if self.server.draining:
            return ""
        self.idle = True
        try:
            line: str = super().read_requestline()
            return line
        finally:
            self.idle = False

    def close_if_idle(self) -> None:
        if self.idle and self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)

    def handle_one_response(self) -> None:
        """A WebSocket handshake to ``/ws`` becomes an echo session on this connection
        (``geoproxy.demo.websocket``), which closes after it; the app answers the rest."""
        environ = self.environ
        key = websocket.handshake_key(environ) if environ["PATH_INFO"] == "/ws" else None
        if key is None:
            super().handle_one_response()
            return
        self.close_connection = True
        app: DemoApp = self.server.application
        greet = environ.get("QUERY_STRING", "") == "greet=1"
        with app.session(environ):
            websocket.serve_echo(self.socket, self.rfile, app.name, key, greet)

    def MessageClass(self, rfile: Any, *_: Any) -> RequestHead:  # noqa: N802 (pywsgi's name)
        return RequestHead.read(rfile)

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ[CONNECTION_KEY] = self
        return environ

    def raw_headers(self) -> list[tuple[str, str]]:
        head: RequestHead = self.headers
        return head.items()

    def log_request(self) -> None:
        """No access log: formatting it costs more than answering ``/``."""

    # pywsgi writes the head, then the first chunk: two sends, two packets. Holding the head
    # for the next send makes it one. (Private pywsgi methods: if they change, this only stops
    # merging, the answers stay right.)
    def _write_with_headers(self, data: bytes) -> None:
        self._holding_head = True
        try:
            super()._write_with_headers(data)
        finally:
            self._holding_head = False
            head, self._held_head = self._held_head, None
            if head is not None:
                super()._sendall(head)

    def _sendall(self, data: bytes) -> None:
        if self._holding_head:
            if self._held_head is None:
                self._held_head = bytes(data)
                return
            data = self._held_head + data
            self._held_head = None
            self._holding_head = False
        super()._sendall(data)


class DemoServer(WSGIServer):  # type: ignore[misc]
    """pywsgi's server, plus a drain that lets the requests in progress finish."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handlers: set[DemoHandler] = set()
        self.draining = False

    def drain(self, grace: float) -> None:
        """Stop accepting, close idle keep-alive connections at once, give the requests in
        progress up to ``grace`` seconds to finish (pywsgi's own ``stop`` either waits for
        idle connections too, or for nothing)."""
        self.draining = True
        self.close()
        deadline = time.monotonic() + grace
        while self.handlers and time.monotonic() < deadline:
            for handler in list(self.handlers):
                handler.close_if_idle()
            gevent.sleep(0.01)


def make_server(name: str, host: str, port: int) -> DemoServer:
    """A server for ``DemoApp(name)`` on ``host:port`` (0 picks a port), not yet started."""
    return DemoServer(
        (host, port),
        DemoApp(name),
        handler_class=DemoHandler,
        log=None,
        backlog=1024,
    )


def serve(name: str, host: str, port: int, grace: float) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    # Handlers first: whoever sees the port accept may send SIGTERM at once.
    stop_requested = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop_requested.set)
    gevent.signal_handler(signal.SIGINT, stop_requested.set)
    server = make_server(name, host, port)
    server.start()
    bound_host, bound_port = server.address[:2]
    print(f"demo backend {name} listening on http://{bound_host}:{bound_port}", flush=True)
    stop_requested.wait()
    server.drain(grace)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m geoproxy.demo.backend", description="A demo HTTP/1.1 application server."
    )
    parser.add_argument("--name", required=True, help="the name it answers with (X-Server)")
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument(
        "--grace", type=float, default=2.0, help="seconds requests get to finish on SIGTERM"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        serve(args.name, args.host, args.port, args.grace)
    except OSError as exc:
        print(
            f"demo backend {args.name}: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
