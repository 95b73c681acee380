"""Real TCP servers for the ``mode tcp`` tests, each a process of its own:

    python -m tests.support.tcp_servers echo NAME PORT
        says ``NAME\\n`` on connect, then echoes every byte back
    python -m tests.support.tcp_servers proxy NAME PORT
        reads a PROXY protocol header (v1 or v2, parsed here independently of geoproxy), says
        ``NAME v1|v2|none SRC SPORT DST DPORT\\n``, then echoes
    python -m tests.support.tcp_servers httpproxy NAME PORT [CERT KEY]
        reads a PROXY protocol header, then (after a TLS handshake with CERT and KEY) serves
        HTTP/1.1 keep-alive GET requests; each answer's body is
        ``NAME conn=N req=K HEADER\n`` (N: the connection's number in the process, from 1; K:
        the request's number on it; HEADER as ``proxy`` says it), then the request's head
    python -m tests.support.tcp_servers tls NAME PORT CERT KEY
        a TLS server: after the handshake says ``NAME SNI\\n`` (the name the client asked
        for), then echoes
    python -m tests.support.tcp_servers sink PORT
        reads and drops everything; ``GET N\\n`` first instead makes it send N bytes and close
        (the benchmark's bulk source)

``start_tcp_server`` starts one through the test process registry and waits for its port.
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the servers themselves import nothing but the standard library
    from tests.support.processes import ManagedProcess, ProcessRegistry

HOST = "127.0.0.1"
_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


@dataclass(frozen=True, slots=True)
class TcpServer:
    name: str
    port: int
    process: ManagedProcess

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def start_tcp_server(registry: ProcessRegistry, log_dir: Path, kind: str, name: str,
                     *extra: str, port: int | None = None, outlive_test: bool = False,
                     timeout: float = 10.0) -> TcpServer:
    (server,) = start_tcp_servers(registry, log_dir, [(kind, name, *extra)], port=port,
                                  outlive_test=outlive_test, timeout=timeout)
    return server


def start_tcp_servers(registry: ProcessRegistry, log_dir: Path,
                      specs: list[tuple[str, ...]], *, port: int | None = None,
                      outlive_test: bool = False, timeout: float = 10.0) -> list[TcpServer]:
    """Start one server per ``(kind, name, *extra)`` at once, then wait for every port."""
    from tests.support.ports import free_ports, wait_for_port

    ports = [port] if port is not None else free_ports(len(specs))
    started: list[TcpServer] = []
    for (kind, name, *extra), chosen in zip(specs, ports, strict=True):
        argv = [sys.executable, "-m", "tests.support.tcp_servers", kind, name, str(chosen),
                *extra]
        if kind == "sink":
            argv = [sys.executable, "-m", "tests.support.tcp_servers", kind, str(chosen)]
        process = registry.start(f"tcp-{kind}-{name}", argv, log_dir, session=outlive_test)
        started.append(TcpServer(name, chosen, process))
    for server in started:
        wait_for_port(HOST, server.port, timeout, server.process.is_running)
    return started


def _echo(sock: socket.socket) -> None:
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


class _Receiver(Protocol):
    def recv(self, size: int, /) -> bytes: ...


def read_proxy_header(sock: _Receiver) -> tuple[str, bytes]:
    """The PROXY header at the start of ``sock``: ("v1"|"v2"|"none", "SRC SPORT DST DPORT")
    and what followed it."""
    data = b""
    while len(data) < 16:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    if data.startswith(_V2_SIGNATURE):
        length = 16 + int.from_bytes(data[14:16], "big")
        while len(data) < length:
            data += sock.recv(4096)
        family, body = data[13], data[16:length]
        if data[12] & 0x0F == 0:
            return "v2 LOCAL", data[length:]
        size = 4 if family == 0x11 else 16
        src = ipaddress.ip_address(body[0:size])
        dst = ipaddress.ip_address(body[size: 2 * size])
        ports = body[2 * size: 2 * size + 4]
        sport, dport = int.from_bytes(ports[:2], "big"), int.from_bytes(ports[2:], "big")
        return f"v2 {src} {sport} {dst} {dport}", data[length:]
    if data.startswith(b"PROXY "):
        while b"\r\n" not in data:
            data += sock.recv(4096)
        line, _, rest = data.partition(b"\r\n")
        words = line.decode("ascii").split(" ")
        if words[1] == "UNKNOWN":
            return "v1 UNKNOWN", rest
        return f"v1 {words[2]} {words[4]} {words[3]} {words[5]}", rest
    return "none", data


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "sink":
        name, port, extra = "sink", int(argv[1]), []
    else:
        name, port, extra = argv[1], int(argv[2]), argv[3:]
    context = None
    connections = iter(range(1, 1 << 30))
    if kind == "httpproxy" and extra:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(extra[0], extra[1])
    if kind == "tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(extra[0], extra[1])

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            try:
                if kind == "echo":
                    sock.sendall(f"{name}\n".encode())
                    _echo(sock)
                elif kind == "proxy":
                    header, rest = read_proxy_header(sock)
                    sock.sendall(f"{name} {header}\n".encode())
                    if rest:
                        sock.sendall(rest)
                    _echo(sock)
                elif kind == "httpproxy":
                    if context is not None:  # the PROXY header came before the handshake
                        header, rest = read_proxy_header(_HeaderOnly(sock))
                        sock = context.wrap_socket(sock, server_side=True)
                    else:
                        header, rest = read_proxy_header(sock)
                    _serve_http(sock, f"{name} conn={next(connections)}", header, rest)
                elif kind == "tls":
                    assert context is not None
                    wrapped = context.wrap_socket(sock, server_side=True)
                    wrapped.sendall(f"{name} {getattr(wrapped, 'sni', '')}\n".encode())
                    _echo(wrapped)
                else:
                    _sink(sock)
            except (OSError, ssl.SSLError, ValueError):
                pass

    if context is not None:
        def remember_sni(conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                         _context: ssl.SSLContext) -> None:
            conn.sni = server_name or ""  # type: ignore[union-attr]
        context.sni_callback = remember_sni

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.request_queue_size = 256
    with socketserver.ThreadingTCPServer((HOST, port), Handler) as server:
        server.serve_forever()


class _HeaderOnly:
    """A socket whose ``recv`` never returns a byte past the PROXY header (it peeks first):
    what follows is the TLS handshake, for the TLS layer to read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.taken = b""

    def recv(self, _size: int) -> bytes:
        peeked = self.sock.recv(4096, socket.MSG_PEEK)
        data = self.taken + peeked
        if data.startswith(_V2_SIGNATURE) and len(data) >= 16:
            end = 16 + int.from_bytes(data[14:16], "big")
        elif data.startswith(b"PROXY ") and b"\r\n" in data:
            end = data.index(b"\r\n") + 2
        else:
            end = len(data) if len(data) < 16 else 16
        want = max(0, min(end, len(data)) - len(self.taken))
        chunk = self.sock.recv(want) if want else b""
        self.taken += chunk
        return chunk


def _serve_http(sock: socket.socket, prefix: str, header: str, data: bytes) -> None:
    """Answer body-less HTTP/1.1 requests on ``sock`` until the client closes it."""
    count = 0
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        count += 1
        body = f"{prefix} req={count} {header}\n".encode() + head + b"\r\n\r\n"
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d"
                     b"\r\n\r\n%b" % (len(body), body))


def _sink(sock: socket.socket) -> None:
    first = sock.recv(65536)
    if first.startswith(b"GET "):
        remaining = int(first[4:].split(b"\n", 1)[0])
        chunk = bytes(262144)
        view = memoryview(chunk)
        while remaining > 0:
            sent = sock.send(view[: min(len(chunk), remaining)])
            remaining -= sent
        return
    while first:
        first = sock.recv(262144)


if __name__ == "__main__":
    main(sys.argv[1:])
