"""An HTTP/1.1 server in the test process whose responses are shaped by the request's query:
``status=N``, ``size=N`` (body bytes), ``ct=`` (Content-Type), ``ce=`` (Content-Encoding),
``cc=`` (Cache-Control), ``etag=``, ``vary=``, ``chunked=1`` (chunked framing), ``close=1``
(the body ends at the close), ``http10=1`` (an HTTP/1.0 response). ``/echo`` answers the
request as JSON: its header fields as received (in order, names as sent), the listening
address and the body's length. Every request is recorded (``seen``) when its head arrives,
before its body is read, so a test can tell when a proxy forwarded it.

It listens on one loopback address and port; ``start_shaped`` starts it in a daemon thread and
``stop`` closes it. Bodies are ``hello world `` repeated, so a test can rebuild them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATTERN = b"hello world "


def shaped_body(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


@dataclass
class Seen:
    target: str
    headers: list[tuple[str, str]]
    at: float = field(default_factory=time.monotonic)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _any(self) -> None:
        self.server.seen.append(Seen(self.path, list(self.headers.items())))
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        length = int(self.headers.get("content-length") or 0)
        received = len(self.rfile.read(length)) if length else 0
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            received = self._read_chunked()
        status = int(query.get("status", 200))
        body = shaped_body(int(query.get("size", 2000)))
        if urlsplit(self.path).path.endswith("/echo"):
            address = self.server.server_address
            body = json.dumps({"headers": list(self.headers.items()), "host": address[0],
                               "port": address[1], "body": received}).encode()
        if query.get("http10"):
            self.protocol_version = "HTTP/1.0"
        self.send_response(status)
        self.send_header("Content-Type", query.get("ct", "text/html"))
        for key, name in (("ce", "Content-Encoding"), ("cc", "Cache-Control"),
                          ("etag", "ETag"), ("vary", "Vary")):
            if key in query:
                self.send_header(name, query[key])
        if self.command == "HEAD" or status in (204, 304):
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return
        if query.get("chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(body) // 2
            for piece in (body[:half], body[half:]):
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif query.get("close") or query.get("http10"):
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _read_chunked(self) -> int:
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return total
            total += len(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = _any

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.seen: list[Seen] = []

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that resets the connection (tests do) is no news


@dataclass
class ShapedServer:
    host: str
    port: int
    _server: _Server

    @property
    def seen(self) -> list[Seen]:
        return self._server.seen

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_shaped(host: str = "127.0.0.1", port: int = 0) -> ShapedServer:
    server = _Server((host, port))
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return ShapedServer(host, server.server_address[1], server)
