"""Scripted HTTP/1.1 servers in the test process: each named server listens on its own loopback
port, answers every request with the status and header fields the test scripted for it, and
records the request head it received, exactly (field names and values as sent, in order).

The script for a request is chosen by its ``X-Case`` header (a test's id), so one set of
servers serves many tests and keep-alive connections from a proxy's pool. Every answer carries
``X-Server: NAME`` and an empty body (Content-Length: 0, except where a status has no body),
unless the script gives the answer's raw bytes (a broken or hostile response).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

CASE_HEADER = "X-Case"
HOST = "127.0.0.1"
NO_BODY = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Received:
    """One request as a scripted server read it."""

    server: str
    method: str
    target: str
    headers: list[tuple[str, str]]

    def all(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for n, v in self.headers if n.lower() == lower]


@dataclass
class Script:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes | None = None  # sent as it is instead of the answer built from the above


class _Handler(socketserver.StreamRequestHandler):
    server: _Listener

    def handle(self) -> None:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        line = self.rfile.readline(65537)
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while (field_line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = field_line.decode("latin-1").partition(":")
            headers.append((name, value.strip(" \t\r\n")))
        self._skip_body(headers)
        fleet = self.server.fleet
        case = next((v for n, v in headers if n.lower() == CASE_HEADER.lower()), "")
        fleet.record(case, Received(self.server.name, method, target, headers))
        script = fleet.scripts.get(case, Script())
        if script.raw is not None:
            self.wfile.write(script.raw)
            self.wfile.flush()
            return True
        lines = [f"HTTP/1.1 {script.status} Scripted", f"X-Server: {self.server.name}"]
        lines += [f"{name}: {value}" for name, value in script.headers]
        if script.status >= 200 and script.status not in NO_BODY:
            lines.append("Content-Length: 0")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.wfile.flush()
        return True

    def _skip_body(self, headers: list[tuple[str, str]]) -> None:
        fields = {name.lower(): value for name, value in headers}
        if "chunked" in fields.get("transfer-encoding", "").lower():
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                self.rfile.read(size + 2)
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
        elif "content-length" in fields:
            self.rfile.read(int(fields["content-length"]))


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, name: str, fleet: ScriptedServers) -> None:
        super().__init__((HOST, 0), _Handler)
        self.name = name
        self.fleet = fleet


class ScriptedServers:
    """Named scripted servers, started at once; ``stop`` closes them."""

    def __init__(self, names: Iterable[str]) -> None:
        self.scripts: dict[str, Script] = {}
        self._received: dict[str, list[Received]] = {}
        self._lock = threading.Lock()
        self._listeners = {name: _Listener(name, self) for name in names}
        for listener in self._listeners.values():
            threading.Thread(target=listener.serve_forever, args=(0.05,), daemon=True).start()

    def port(self, name: str) -> int:
        port: int = self._listeners[name].server_address[1]
        return port

    def address(self, name: str) -> str:
        return f"{HOST}:{self.port(name)}"

    def script(self, case: str, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> None:
        """What every server answers to requests of ``case``."""
        self.scripts[case] = Script(status, list(headers))

    def script_raw(self, case: str, answer: bytes) -> None:
        """Every server answers requests of ``case`` with exactly these bytes."""
        self.scripts[case] = Script(raw=answer)

    def record(self, case: str, received: Received) -> None:
        with self._lock:
            self._received.setdefault(case, []).append(received)

    def received(self, case: str) -> list[Received]:
        """Every request of ``case`` the servers received, in order."""
        with self._lock:
            return list(self._received.get(case, []))

    def total(self) -> int:
        """How many requests the servers received, all cases together."""
        with self._lock:
            return sum(len(requests) for requests in self._received.values())

    def stop(self) -> None:
        for listener in self._listeners.values():
            listener.shutdown()
            listener.server_close()
