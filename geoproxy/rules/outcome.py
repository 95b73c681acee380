"""What a rule's step returns, and what compiling a step needs (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from geoproxy.rules.fetches import CompileEnv
from geoproxy.rules.txn import Txn

# what a header value or a request line may never hold (DESIGN.md invariant 7)
FORBIDDEN: Final = re.compile(r"[\r\n\x00]")
REASONS: Final = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted",
    203: "Non-Authoritative Information", 204: "No Content", 205: "Reset Content",
    206: "Partial Content", 300: "Multiple Choices", 301: "Moved Permanently", 302: "Found",
    303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Payload Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
    416: "Range Not Satisfiable", 417: "Expectation Failed", 418: "I'm a teapot",
    421: "Misdirected Request", 422: "Unprocessable Content", 425: "Too Early",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def reason_of(status: int) -> str:
    return REASONS.get(status, "Other")


class _Stop:
    """``allow``: the rest of this rule list is skipped."""

    def __repr__(self) -> str:
        return "STOP"


STOP: Final = _Stop()


@dataclass(slots=True)
class LocalReply:
    """An answer a rule makes (rule 1). ``error_page`` asks for the proxy's page for
    ``status`` (its errorfile, else HAProxy's built-in page) with ``headers`` added;
    ``raw`` is a whole response (an ``errorfile`` argument); ``service`` names an applet
    (``prometheus-exporter``); ``termination`` is the log's first two state letters."""

    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error_page: bool = False
    raw: bytes | None = None
    service: str | None = None
    termination: str = "LR"


Outcome = LocalReply | _Stop | None
Step = Callable[[Txn], Outcome]


@dataclass(frozen=True, slots=True)
class StepContext:
    """What compiling a step needs: the configuration-wide ``CompileEnv``, the proxy the rule
    belongs to (``auth``'s default realm) and whether it runs on the response."""

    env: CompileEnv
    proxy: str
    response: bool


def failed_rewrite() -> LocalReply:
    """HAProxy's answer to a rewrite that cannot be done (``strict-mode``, on by default)."""
    return LocalReply(500, error_page=True, termination="PR")
