"""One request as the rules see it: the WSGI environ (request line and headers), variables,
captures, and once the server answered, the response's status and headers.

Rules:
1. Request headers live in the environ as the worker made them (``HTTP_X_FOO``, with
   ``CONTENT_TYPE``/``CONTENT_LENGTH``); repeated fields are already joined with ``, ``. Rules
   change the environ in place, so what the server is sent (``forward.request_head``) and what
   persistence reads is what the rules left. A header a rule adds goes last, as in HAProxy.
2. Response headers are a list of (name, value) pairs of the transaction's own (the forwarder
   hands a fresh list per response); rules change it in place.
3. Variables are keyed by their full name (``txn.user``); ``req.*`` ones end with the request
   (``enter_response``), ``proc.*`` ones live in one dict per process. ``sess.*`` ones live as
   long as the request, geoproxy having no per-connection store (docs/rules.md).
4. Nothing here does I/O; ``now`` is the time the request began, passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from geoproxy.httptext import header_values

if TYPE_CHECKING:
    from geoproxy.tcp.facts import TcpFacts

Environ = dict[str, Any]
ENVIRON_KEY: Final = "geoproxy.txn"

# proc.* variables: one store per process
PROC_VARS: dict[str, object] = {}

_environ_keys: dict[str, str] = {}


def environ_key(name: str) -> str:
    """The WSGI environ key of request header ``name`` (any case)."""
    key = _environ_keys.get(name)
    if key is None:
        upper = name.upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
        if len(_environ_keys) < 4096:
            _environ_keys[name] = key
    return key


def header_name(key: str) -> str:
    """The lower-case header name of environ key ``key`` (the inverse of ``environ_key``)."""
    name = key[5:] if key.startswith("HTTP_") else key
    return name.lower().replace("_", "-")


def request_header_items(environ: Environ) -> list[tuple[str, str]]:
    """Every request header as (lower-case name, value), in environ order."""
    return [
        (header_name(key), value)
        for key, value in environ.items()
        if key.startswith("HTTP_") or (key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value)
    ]


def split_values(value: str | None) -> list[str]:
    """The comma-separated values of one (joined) header value, as HAProxy's ``hdr`` sees
    them; none for an absent header."""
    if value is None:
        return []
    if '"' not in value:  # no quoted string: a plain split (most values)
        return [part.strip(" \t") for part in value.split(",")]
    return list(header_values(value))


class Txn:
    """The state one request's rules read and change (see the module rules)."""

    __slots__ = (
        "environ", "frontend", "backend", "server", "vars", "status", "reason", "headers",
        "captures", "res_captures", "now", "nbsrv", "request_line", "client_port", "tcp",
    )  # fmt: skip

    def __init__(self, environ: Environ, frontend: str = "", now: float = 0.0) -> None:
        self.environ = environ
        self.frontend = frontend
        self.backend = ""
        self.server = ""
        self.vars: dict[str, object] | None = None
        self.status = 0  # the response's status, 0 before there is one
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.captures: list[str | None] | None = None
        self.res_captures: list[str | None] | None = None
        self.now = now
        # usable servers of a backend (``nbsrv``), given by the proxy app
        self.nbsrv: Callable[[str], int] = _no_servers
        # the request line as received (``capture.req.*``, ``%r``), before rules rewrote it
        self.request_line = (
            environ.get("REQUEST_METHOD", ""),
            environ.get("RAW_URI", ""),
            environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        )
        self.client_port = 0
        # a mode tcp connection's facts (geoproxy.rules.fetch_tcp); None for an HTTP request
        self.tcp: TcpFacts | None = None
        environ[ENVIRON_KEY] = self

    # -- variables ---------------------------------------------------------------------------

    def get_var(self, name: str) -> object | None:
        if name.startswith("proc."):
            return PROC_VARS.get(name)
        store = self.vars
        return None if store is None else store.get(name)

    def set_var(self, name: str, value: object) -> None:
        if name.startswith("proc."):
            PROC_VARS[name] = value
            return
        if self.vars is None:
            self.vars = {}
        self.vars[name] = value

    def unset_var(self, name: str) -> None:
        if name.startswith("proc."):
            PROC_VARS.pop(name, None)
        elif self.vars is not None:
            self.vars.pop(name, None)

    def enter_response(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        """The server (or geoproxy) answered: response fetches now see this response, and the
        request's ``req.*`` variables are gone (rule 3)."""
        self.status = status
        self.reason = reason
        self.headers = headers
        store = self.vars
        if store:
            for name in [n for n in store if n.startswith("req.")]:
                del store[name]


def _no_servers(backend: str) -> int:
    return 0


def txn_of(environ: Environ, frontend: str = "") -> Txn:
    """The request's ``Txn``, made on first use."""
    txn: Txn | None = environ.get(ENVIRON_KEY)
    return txn if txn is not None else Txn(environ, frontend)
