"""A raw HTTP/2 client over a plain socket, built on the ``h2`` package: it sends exactly the
frames a test asks for (abuse included) and collects what the server answers. Every read is
bounded by the socket's timeout."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import ProtocolError


@dataclass(slots=True)
class H2Answer:
    """What one stream got back."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if the server reset it

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name.lower()), None)


class RawH2Client:
    """One HTTP/2 connection with prior knowledge (h2c)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0,
                 *, validate: bool = True) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.conn = H2Connection(H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=validate,
            normalize_outbound_headers=validate))
        self.answers: dict[int, H2Answer] = {}
        self.goaway: ConnectionTerminated | None = None
        self.closed = False
        self.authority = f"{host}:{port}"
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str = "GET", path: str = "/",
                headers: list[tuple[str, str]] | None = None, body: bytes | None = None,
                *, end: bool = True) -> int:
        """Open a stream with this request; its id."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "http"), (":authority", self.authority),
                  (":path", path)] + list(headers or [])
        self.conn.send_headers(stream_id, fields, end_stream=end and body is None)
        self.flush()
        self.answers[stream_id] = H2Answer()
        if body is not None:
            self.send_body(stream_id, body, end=end)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, *, end: bool = True,
                  timeout: float = 10.0) -> None:
        """Send ``body`` as the server's windows allow (reading its WINDOW_UPDATEs)."""
        deadline = time.monotonic() + timeout
        while True:
            window = min(self.conn.local_flow_control_window(stream_id),
                         self.conn.max_outbound_frame_size)
            if window > 0 or not body:
                piece, body = body[:window], body[window:]
                self.conn.send_data(stream_id, piece, end_stream=end and not body)
                self.flush()
                if not body:
                    return
                continue
            if self.closed or time.monotonic() > deadline:
                raise TimeoutError("the server's window stayed closed")
            self.receive_once()

    def receive_once(self) -> bool:
        """One read, its events handled; False when the server closed."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self.closed = True
            return False
        for event in events:
            self._handle(event)
        try:
            self.flush()
        except OSError:
            self.closed = True
            return False
        return True

    def _handle(self, event: Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        answer = self.answers.setdefault(stream_id, H2Answer()) if stream_id else None
        if isinstance(event, ResponseReceived) and answer is not None:
            for name, value in event.headers or ():
                name_text = name.decode() if isinstance(name, bytes) else name
                value_text = value.decode() if isinstance(value, bytes) else value
                if name_text == ":status":
                    answer.status = int(value_text)
                else:
                    answer.headers.append((name_text, value_text))
        elif isinstance(event, DataReceived) and answer is not None:
            answer.body += event.data or b""
            if event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id or 0)
        elif isinstance(event, StreamEnded) and answer is not None:
            answer.ended = True
        elif isinstance(event, StreamReset) and answer is not None:
            answer.reset = int(event.error_code or 0)
        elif isinstance(event, ConnectionTerminated):
            self.goaway = event
            if event.error_code == 0:
                # h2 closes its state machine on any GOAWAY; after a graceful one the streams
                # it lets through still finish (RFC 9113 6.8)
                self.conn.state_machine.state = ConnectionState.CLIENT_OPEN

    def wait(self, stream_ids: list[int], timeout: float = 10.0) -> list[H2Answer]:
        """Read until each stream ended or was reset (or the connection closed)."""
        deadline = time.monotonic() + timeout
        while not all(self.answers[s].ended or self.answers[s].reset is not None
                      for s in stream_ids):
            if self.closed or time.monotonic() > deadline:
                break
            self.receive_once()
        return [self.answers[s] for s in stream_ids]

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """Read until the server closes the connection; whether it did in time."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            try:
                self.receive_once()
            except TimeoutError:
                continue
            except OSError:
                self.closed = True
        return self.closed

    def get(self, path: str = "/", headers: list[tuple[str, str]] | None = None) -> H2Answer:
        return self.wait([self.request("GET", path, headers)])[0]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
