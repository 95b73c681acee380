"""The error responses geoproxy sends itself, byte for byte as HAProxy 2.6 sends them.

HAProxy's built-in pages (src/http.c ``http_err_msgs``) are used unless the frontend or the
backend names an ``errorfile`` for that status; an errorfile holds a whole HTTP response, which is
sent as the file says (status line, headers, body), as HAProxy does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from geoproxy.config.model import ErrorFile

_BUILTIN_TEXT = {
    200: ("OK", "Service ready."),  # monitor-uri's answer
    400: ("Bad request", "Your browser sent an invalid request."),
    401: ("Unauthorized", "You need a valid user and password to access this content."),
    403: ("Forbidden", "Request forbidden by administrative rules."),
    404: ("Not Found", "The resource could not be found."),
    405: (
        "Method Not Allowed",
        "A request was made of a resource using a request method not supported by that resource",
    ),
    407: ("Unauthorized", "You need a valid user and password to access this content."),
    408: ("Request Time-out", "Your browser didn't send a complete request in time."),
    410: ("Gone", "The resource is no longer available and will not be available again."),
    413: ("Payload Too Large", "The request entity exceeds the maximum allowed."),
    414: (
        "Request-URI Too Long",
        "The requested URL's length exceeds the capacity limit for this server.",
    ),
    421: ("Misdirected Request", "Request sent to a non-authoritative server."),
    422: ("Unprocessable Content", "The server cannot process the contained instructions."),
    425: ("Too Early", "Your browser sent early data."),
    429: ("Too Many Requests", "You have sent too many requests in a given amount of time."),
    431: ("Request Header Fields Too Large", "Your browser sent too many or too large headers."),
    500: ("Internal Server Error", "An internal server error occurred."),
    501: (
        "Not Implemented",
        ".The server does not support the functionality required to fulfill the request.",
    ),
    502: ("Bad Gateway", "The server returned an invalid or incomplete response."),
    503: ("Service Unavailable", "No server is available to handle this request."),
    504: ("Gateway Time-out", "The server didn't respond in time."),
}

# HAProxy's connection-level answers (400, 408) close the connection and carry
# ``Connection: close``; the others keep it open.
_CLOSING = frozenset({400, 408, 414, 431})


@dataclass(frozen=True, slots=True)
class ErrorPage:
    """A ready-to-send error response: WSGI status string, headers, body, and whether the
    client connection must be closed after it."""

    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    close: bool

    @property
    def is_silent(self) -> bool:
        """An empty errorfile: HAProxy closes the connection without a byte."""
        return not self.status

    @property
    def raw(self) -> bytes:
        """The whole response as bytes, for answers sent outside WSGI (the worker's 400/408)."""
        lines = [f"HTTP/1.1 {self.status}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.close and not any(name.lower() == "connection" for name, _ in self.headers):
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def builtin_page(status: int) -> ErrorPage:
    reason, text = _BUILTIN_TEXT[status]
    body = f"<html><body><h1>{status} {reason}</h1>\n{text}\n</body></html>\n".encode()
    if status in _CLOSING:
        # Sent by HAProxy's HTTP/1 mux itself, hence another spelling and a Connection header.
        headers: tuple[tuple[str, str], ...] = (
            ("Content-length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("Connection", "close"),
            ("Content-Type", "text/html"),
        )
    else:
        headers = (
            ("content-length", str(len(body))),
            ("cache-control", "no-cache"),
            ("content-type", "text/html"),
        )
    return ErrorPage(f"{status} {reason}", headers, body, status in _CLOSING)


def rule_page(status: int) -> ErrorPage:
    """HAProxy's built-in page for ``status`` as a rule (``deny``, ``auth``...) sends it:
    lower-case headers; 400 and 408 close the connection."""
    reason, text = _BUILTIN_TEXT[status]
    body = f"<html><body><h1>{status} {reason}</h1>\n{text}\n</body></html>\n".encode()
    headers: tuple[tuple[str, str], ...] = (
        ("content-length", str(len(body))),
        ("cache-control", "no-cache"),
        ("content-type", "text/html"),
    )
    close = status in (400, 408)
    return ErrorPage(f"{status} {reason}", headers, body, close)


def parse_errorfile(response: bytes) -> ErrorPage:
    """Turn an errorfile's raw HTTP response into an ``ErrorPage``. The parser has already
    validated the file; ``Connection: close`` in it closes the client connection, and so
    does a file without ``Content-Length``, whose body then ends with the connection, as
    HAProxy 2.6 sends it. An empty file gives a silent page (``is_silent``)."""
    if not response:
        return ErrorPage("", (), b"", True)
    head, _, body = response.partition(b"\r\n\r\n")
    if not _ and b"\n\n" in response:
        head, _, body = response.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    status = lines[0].split(" ", 1)[1].strip()
    headers: list[tuple[str, str]] = []
    close = False
    has_length = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "connection":
            close = close or "close" in value.lower()
            continue
        if name.lower() == "content-length":
            has_length = True
            continue
        headers.append((name, value))
    if has_length:
        headers.append(("content-length", str(len(body))))
    else:
        close = True
    return ErrorPage(status, tuple(headers), body, close)


class ErrorPages:
    """Every error page of one proxy (frontend or backend), built once at start-up."""

    def __init__(self, errorfiles: Iterable[ErrorFile]) -> None:
        self._pages = {page.status: parse_errorfile(page.response) for page in errorfiles}

    def get(self, status: int) -> ErrorPage | None:
        """This proxy's own errorfile for ``status``, if it has one."""
        return self._pages.get(status)

    def page(self, status: int) -> ErrorPage:
        """This proxy's errorfile for ``status``, else HAProxy's built-in page."""
        return self._pages.get(status) or _builtin(status)

    def rule_page(self, status: int) -> ErrorPage:
        """The page a rule answers with: this proxy's errorfile, else ``rule_page``."""
        found = self._pages.get(status)
        if found is not None:
            return found
        page = _RULE_CACHE.get(status)
        if page is None:
            page = _RULE_CACHE[status] = rule_page(status)
        return page


_BUILTIN_CACHE: dict[int, ErrorPage] = {}
_RULE_CACHE: dict[int, ErrorPage] = {}


def _builtin(status: int) -> ErrorPage:
    page = _BUILTIN_CACHE.get(status)
    if page is None:
        page = _BUILTIN_CACHE[status] = builtin_page(status)
    return page
