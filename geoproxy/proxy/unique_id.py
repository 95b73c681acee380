"""``unique-id-format`` evaluated for one request (the nodes come parsed from the
configuration: ``geoproxy.config.unique_id_format``).

Rules:
1. The id is built once per request, when the request is forwarded (HAProxy builds it at the
   latest there), and kept in the environ (``UNIQUE_ID_KEY``) for whoever needs it later (the
   log's ``%ID``, the ``unique-id`` fetch).
2. Numbers and addresses print as HAProxy prints them: decimal, or with the ``X`` flag ``%04X``
   numbers and addresses byte by byte in hexadecimal.
3. ``%rt`` counts this worker's requests (HAProxy: its process's).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from geoproxy.config.unique_id_format import Literal, Node, Separator, Variable, parse_format

Environ = dict[str, Any]
UNIQUE_ID_KEY = "geoproxy.unique_id"
LOCAL_ADDRESS = "geoproxy.local_addr"  # the address the client connected to (the worker's)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_counter = itertools.count()
_HOSTNAME = socket.gethostname()


def _number(value: int, hexa: bool) -> str:
    return f"{value:04X}" if hexa else str(value)


def _address(text: str, hexa: bool) -> str:
    if not hexa:
        return text
    try:
        packed = ipaddress.ip_address(text).packed
    except ValueError:
        return text
    return packed.hex().upper()


def _accepted(environ: Environ) -> float:
    accepted: float = environ.get("geoproxy.accepted") or time.time()
    return accepted


def _date(environ: Environ) -> str:
    accepted = _accepted(environ)
    moment = time.localtime(accepted)
    millis = int(accepted * 1000) % 1000
    return (f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
            f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d}.{millis:03d}")


Context = tuple[Environ, str, str]  # environ, frontend name, backend name
_Render = Callable[[Context, bool], str]

_RENDER: dict[str, _Render] = {
    "ci": lambda c, x: _address(c[0].get("REMOTE_ADDR", ""), x),
    "cp": lambda c, x: _number(int(c[0].get("REMOTE_PORT") or 0), x),
    "fi": lambda c, x: _address(c[0].get(LOCAL_ADDRESS) or c[0].get("SERVER_NAME", ""), x),
    "fp": lambda c, x: _number(int(c[0].get("SERVER_PORT") or 0), x),
    "Ts": lambda c, x: _number(int(_accepted(c[0])), x),
    "ms": lambda c, x: (f"{int(_accepted(c[0]) * 1000) % 1000:02X}" if x
                        else f"{int(_accepted(c[0]) * 1000) % 1000:03d}"),
    "t": lambda c, x: _date(c[0]),
    "rt": lambda c, x: _number(next(_counter), x),
    "pid": lambda c, x: _number(os.getpid(), x),
    "H": lambda c, x: _HOSTNAME,
    "f": lambda c, x: c[1],
    "ft": lambda c, x: c[1],
    "b": lambda c, x: c[2],
    "uuid": lambda c, x: str(uuid.uuid4()),
    "rand": lambda c, x: str(random.getrandbits(32)),
}


class UniqueIdFormat:
    """A compiled ``unique-id-format`` (module rules)."""

    __slots__ = ("_nodes",)

    def __init__(self, text: str) -> None:
        self._nodes: tuple[Node, ...] = parse_format(text)

    def render(self, environ: Environ, frontend: str, backend: str = "") -> str:
        """The id of this request, made once and kept in the environ (rule 1)."""
        known: str | None = environ.get(UNIQUE_ID_KEY)
        if known is not None:
            return known
        context = (environ, frontend, backend)
        parts: list[str] = []
        last_is_space = True  # HAProxy drops a separator at the start and repeated ones
        for node in self._nodes:
            if isinstance(node, Separator):
                if not last_is_space:
                    parts.append(" ")
                    last_is_space = True
                continue
            text = node.text if isinstance(node, Literal) else _variable(node, context)
            if text:
                parts.append(text)
                last_is_space = False
        if parts and parts[-1] == " ":
            parts.pop()
        value = "".join(parts)
        environ[UNIQUE_ID_KEY] = value
        return value


def _variable(node: Variable, context: Context) -> str:
    return _RENDER[node.name](context, node.hexa)
