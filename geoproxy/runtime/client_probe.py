"""Whether a client has closed its side of the connection while its request waits
(``option abortonclose``), without reading anything the request still needs.

Rules:
1. The client closed when its socket is readable and a peek reads nothing (its FIN), or when
   the peek fails (the connection was reset). Bytes waiting (a pipelined request, the rest of
   a body) mean it is still there: nothing is consumed, the peek leaves them in place.
2. The probe never blocks: a select with no timeout says first whether the peek would.
3. A TLS connection is not probed (a peek would read TLS records, not the client's FIN): the
   worker offers the probe for plain connections only, and its request is sent as without
   the option.
"""

from __future__ import annotations

import select
import socket
from typing import Any


def client_closed(sock: Any) -> bool:
    """True when the client behind ``sock`` closed its side (rule 1), at once (rule 2)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return bool(sock.recv(1, socket.MSG_PEEK) == b"")
    except (OSError, ValueError):
        return True  # reset, or the socket is already closed
