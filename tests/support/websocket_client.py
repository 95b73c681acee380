"""A tiny WebSocket client on a raw socket (RFC 6455), written apart from the demo server so
that the two check each other: frames are masked, as a client's must be, and every read waits
at most ``timeout`` seconds."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time

from tests.support.raw_client import parse_head

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HEAD = 65536


class WebSocketClient:
    """One client connection to ``host:port``: ``handshake`` first, then frames."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.status = 0
        self.headers: list[tuple[str, str]] = []

    def __enter__(self) -> WebSocketClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for n, v in self.headers if n.lower() == lower), None)

    def handshake(
        self, path: str = "/ws", headers: dict[str, str] | None = None, early: bytes = b""
    ) -> int:
        """Send the opening handshake (and ``early`` bytes behind it, in the same send) and
        read the answer's head; return its status. A 101 must carry the right
        ``Sec-WebSocket-Accept`` (AssertionError otherwise)."""
        lines = [
            f"GET {path} HTTP/1.1",
            "Host: ws.test",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + early)
        head = self._read_until(b"\r\n\r\n")
        self.status, self.headers = parse_head(head)
        if self.status == 101:
            digest = hashlib.sha1((self.key + GUID).encode(), usedforsecurity=False).digest()
            assert self.header("Sec-WebSocket-Accept") == base64.b64encode(digest).decode()
            assert (self.header("Upgrade") or "").lower() == "websocket"
            assert "upgrade" in (self.header("Connection") or "").lower()
        return self.status

    def send_frame(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(masked_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode())

    def send_close(self, code: int = 1000) -> None:
        self.send_frame(CLOSE, struct.pack("!H", code))

    def recv_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked, as servers send them)."""
        first, second = self._read_exactly(2)
        assert not second & 0x80, "a server frame must not be masked"
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._read_exactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._read_exactly(8))[0]
        return first & 0x0F, self._read_exactly(size)

    def recv_text(self) -> str:
        opcode, payload = self.recv_frame()
        assert opcode == TEXT, f"expected a text frame, got opcode {opcode}: {payload!r}"
        return payload.decode()

    def echo(self, text: str) -> str:
        self.send_text(text)
        return self.recv_text()

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def sees_eof(self, wait: float = 5.0) -> bool:
        """True once the peer's stream ends (within ``wait`` seconds, bytes before the end
        dropped), False if it does not."""
        deadline = time.monotonic() + wait
        self._buffer = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            finally:
                self.sock.settimeout(self.timeout)
        return False

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed; unread: {self._buffer[:200]!r}")
        self._buffer += chunk

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            if len(self._buffer) > MAX_HEAD:
                raise ValueError(f"no {marker!r} in {self._buffer[:200]!r}")
            self._fill()
        data, _, self._buffer = self._buffer.partition(marker)
        return data + marker

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final frame as a client sends it: masked with a fresh random key."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
