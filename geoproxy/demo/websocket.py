"""The demo backend's WebSocket echo at ``/ws``: a minimal RFC 6455 server, written by hand.

Rules:
1. The handshake (RFC 6455 4.2): a GET with ``Upgrade: websocket``, ``upgrade`` among the
   Connection tokens, ``Sec-WebSocket-Version: 13`` and a ``Sec-WebSocket-Key`` of 16 bytes
   in base64 is answered ``101 Switching Protocols`` with its ``Sec-WebSocket-Accept``. Any
   other request to ``/ws`` is the app's (a 426).
2. Each text message is answered with the text ``NAME: message``, NAME being the server's,
   so that a client sees which server it reached; a binary message comes back as it is. Pings
   are answered with pongs. The message ``!close`` makes the server close: a close frame,
   then the TCP connection, without waiting for the client's.
3. With ``?greet=1`` the server speaks first: ``NAME: hello`` leaves with the 101 head, in the
   same packet (a proxy must pass on what the server sent right after its head).
4. A client's close frame is answered with one carrying the same status code, then the
   connection closes; so does the end of the client's stream. Client frames must be masked,
   control frames short and unfragmented, messages at most ``MAX_MESSAGE`` bytes: otherwise
   the server closes with 1002 (protocol error) or 1009 (too big).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Mapping
from typing import Any, Final

GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE: Final = 1 << 20

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_CLOSE_PROTOCOL_ERROR, _CLOSE_TOO_BIG = 1002, 1009


def accept_value(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake_key(environ: Mapping[str, Any]) -> str | None:
    """The client's key when ``environ`` is a WebSocket handshake (rule 1), else None."""
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
        return None
    tokens = {token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")}
    if "upgrade" not in tokens or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        return None
    key: str = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    return key


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame, as a server sends it."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + payload


class _Closed(Exception):
    """The session is over; ``code`` is the close frame to send, None for none."""

    def __init__(self, code: int | None, reason: bytes = b"") -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason


def serve_echo(sock: Any, rfile: Any, name: str, key: str, greet: bool) -> None:
    """Run one session (module rules) on ``sock``, reading through ``rfile`` (the server's
    buffered reader of that socket, which may already hold the client's first frames)."""
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_value(key)}\r\nX-Server: {name}\r\n\r\n"
    ).encode("latin-1")
    if greet:
        head += frame(TEXT, f"{name}: hello".encode())
    sock.sendall(head)
    prefix = f"{name}: ".encode()
    try:
        while True:
            opcode, message = _read_message(rfile, sock)
            if opcode == TEXT and message == b"!close":
                raise _Closed(1000, b"closing as asked")
            if opcode == TEXT:
                sock.sendall(frame(TEXT, prefix + message))
            else:
                sock.sendall(frame(BINARY, message))
    except _Closed as closed:
        if closed.code is not None:
            payload = struct.pack("!H", closed.code) + closed.reason
            sock.sendall(frame(CLOSE, payload))
    except OSError:
        pass


def _read_message(rfile: Any, sock: Any) -> tuple[int, bytes]:
    """The next data message (text or binary), control frames handled on the way."""
    opcode: int | None = None
    parts: list[bytes] = []
    size = 0
    while True:
        fin, frame_opcode, payload = _read_frame(rfile)
        if frame_opcode >= CLOSE:
            _control(sock, frame_opcode, payload)
            continue
        if (frame_opcode == CONTINUATION) != (opcode is not None):
            raise _Closed(_CLOSE_PROTOCOL_ERROR)
        if frame_opcode not in (CONTINUATION, TEXT, BINARY):
            raise _Closed(_CLOSE_PROTOCOL_ERROR)
        opcode = frame_opcode if opcode is None else opcode
        size += len(payload)
        if size > MAX_MESSAGE:
            raise _Closed(_CLOSE_TOO_BIG)
        parts.append(payload)
        if fin:
            return opcode, b"".join(parts)


def _control(sock: Any, opcode: int, payload: bytes) -> None:
    if opcode == CLOSE:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        raise _Closed(code if code is not None else 1000)
    if opcode == PING:
        sock.sendall(frame(PONG, payload))
    elif opcode != PONG:
        raise _Closed(_CLOSE_PROTOCOL_ERROR)


def _read_frame(rfile: Any) -> tuple[bool, int, bytes]:
    first, second = _read_exactly(rfile, 2)
    fin, opcode = bool(first & 0x80), first & 0x0F
    masked, size = bool(second & 0x80), second & 0x7F
    if not masked or first & 0x70:
        raise _Closed(_CLOSE_PROTOCOL_ERROR)
    if opcode >= CLOSE and (size > 125 or not fin):
        raise _Closed(_CLOSE_PROTOCOL_ERROR)
    if size == 126:
        size = struct.unpack("!H", _read_exactly(rfile, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", _read_exactly(rfile, 8))[0]
    if size > MAX_MESSAGE:
        raise _Closed(_CLOSE_TOO_BIG)
    mask = _read_exactly(rfile, 4)
    payload = _read_exactly(rfile, size)
    return fin, opcode, _unmask(payload, mask)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def _read_exactly(rfile: Any, size: int) -> bytes:
    data: bytes = rfile.read(size) if size else b""
    if len(data) < size:
        raise _Closed(None)  # the client's stream ended: nothing more to say
    return data
