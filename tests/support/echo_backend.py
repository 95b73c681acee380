"""A backend that tells what it received: ``python -m tests.support.echo_backend PORT``.

Each request is answered ``200 OK`` with a JSON body ``{"method", "target", "headers"}``
(headers as [name, value] pairs, in the order and case received). A request header
``x-respond: NAME=VALUE; NAME=VALUE`` makes the answer carry those response headers, and
``x-respond-status: CODE`` changes its status: response rules then have something to act on.
Threads, one per connection, HTTP/1.1 keep-alive, no body read beyond Content-Length.
Prints ``echo backend listening on PORT`` when ready; stops on SIGTERM.
``python -m tests.support.echo_backend PORT CERT.pem [CLIENT_CA.pem]`` serves over TLS instead
(requiring a client certificate signed by CLIENT_CA when given), and tells in
``X-Echo-Connection`` which of its connections (1, 2...) carried each answer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from typing import Any

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
            302: "Found", 404: "Not Found", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _read_head(conn: socket.socket, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    return head


def _serve(conn: socket.socket, context: Any = None, number: int = 0) -> None:
    buffer = bytearray()
    if context is not None:
        try:
            conn.settimeout(5)
            conn = context.wrap_socket(conn, server_side=True)
            conn.settimeout(None)
        except OSError:
            conn.close()
            return
    with conn:
        while True:
            head = _read_head(conn, buffer)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
            headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
            length = 0
            for name, value in headers:
                if name.lower() == "content-length":
                    length = int(value)
            while len(buffer) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            del buffer[:length]
            _answer(conn, method, target, headers, number)


def _answer(conn: socket.socket, method: str, target: str, headers: list[Any],
            number: int = 0) -> None:
    status = 200
    extra: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "x-respond-status":
            status = int(value)
        elif lowered == "x-respond":
            for item in value.split(";"):
                key, _, val = item.strip().partition("=")
                if key:
                    extra.append((key, val))
    body = json.dumps({"method": method, "target": target, "headers": headers}).encode()
    if method == "HEAD" or status in (204, 304):
        body = b""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Other')}",
             "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in extra]
    if number:
        lines.append(f"X-Echo-Connection: {number}")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def main() -> None:
    port = int(sys.argv[1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # threads hold no state to flush
    context = None
    if len(sys.argv) > 2:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2])
        if len(sys.argv) > 3:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=sys.argv[3])
    print(f"echo backend listening on {port}", flush=True)
    accepted = 0
    while True:
        conn, _ = listener.accept()
        accepted += 1
        number = accepted if context is not None else 0
        threading.Thread(target=_serve, args=(conn, context, number), daemon=True).start()


if __name__ == "__main__":
    main()
