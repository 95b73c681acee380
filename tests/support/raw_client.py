"""Raw bytes over a socket, raw answer back, every read bounded by a timeout.

For hostile-input tests (nothing here fixes up what is sent) and for tests that must see the
exact bytes of an answer, or several answers on one keep-alive connection.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

NO_BODY_STATUSES = frozenset({204, 304})
MAX_ANSWER = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RawResponse:
    """One response as received: ``head`` is the status line and the fields, undecoded."""

    status: int
    head: bytes
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for n, v in self.headers if n.lower() == lower), None)


class RawConnection:
    """One client connection to ``host:port``; every read waits at most ``timeout`` seconds."""

    def __init__(self, host: str, port: int, timeout: float = 5.0,
                 source: str | None = None) -> None:
        """``source``: the local address to connect from (another loopback address)."""
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self._buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        """Half-close: tell the server we will send nothing more."""
        self.sock.shutdown(socket.SHUT_WR)

    def read_until_closed(self, limit: int = MAX_ANSWER) -> bytes:
        """Everything until the server closes (raises TimeoutError if it does not)."""
        while len(self._buffer) <= limit and self._fill():
            pass
        data, self._buffer = self._buffer, b""
        return data

    def read_response(self, method: str = "GET") -> RawResponse:
        """One response, framed as HTTP/1.1 frames it: no body (HEAD, 1xx, 204, 304),
        Content-Length, chunked, or until the server closes."""
        head = self._read_until(b"\r\n\r\n")
        status, headers = parse_head(head)
        fields = {name.lower(): value for name, value in headers}
        if method == "HEAD" or status in NO_BODY_STATUSES or status < 200:
            body = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in fields:
            body = self._read_exactly(int(fields["content-length"]))
        else:
            body = self.read_until_closed()
        return RawResponse(status, head, headers, body)

    def is_closed_by_peer(self, wait: float = 0.5) -> bool:
        """True when the server closed the connection (within ``wait`` seconds)."""
        if self._buffer:
            return False
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(self.timeout)

    # -- framing --------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read more into the buffer; False when the server closed."""
        chunk = self.sock.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def _read_until(self, marker: bytes) -> bytes:
        deadline = time.monotonic() + self.timeout
        while marker not in self._buffer:
            if time.monotonic() > deadline or len(self._buffer) > MAX_ANSWER:
                raise TimeoutError(f"no {marker!r} in {self._buffer[:200]!r}")
            if not self._fill():
                raise ConnectionError(f"closed before {marker!r}: {self._buffer[:200]!r}")
        data, _, self._buffer = self._buffer.partition(marker)
        return data + marker

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise ConnectionError(f"closed after {len(self._buffer)} of {size} bytes")
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self._read_until(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self._read_until(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                return bytes(body)
            body += self._read_exactly(size)
            self._read_exactly(2)


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """The status code and the fields (in order, names as sent) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
    return status, headers


def exchange(
    host: str, port: int, data: bytes, timeout: float = 5.0, half_close: bool = True
) -> bytes:
    """Send ``data`` (then half-close, unless told not to) and return every byte the server
    sends until it closes; TimeoutError if it does not close within ``timeout`` of silence."""
    with RawConnection(host, port, timeout) as connection:
        connection.send(data)
        if half_close:
            connection.shutdown_write()
        return connection.read_until_closed()
