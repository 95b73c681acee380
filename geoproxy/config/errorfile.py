"""``errorfile CODE FILE``: a complete HTTP response read and checked at load time.

Rules:
1. CODE is one of the statuses HAProxy produces itself (``http_err_codes`` in HAProxy 2.6).
2. A relative FILE is read from the directory of the configuration file: HAProxy's
   ``default-path config`` behaviour, chosen so that a configuration and its error pages can
   be moved together (HAProxy's own default is the current directory).
3. The file holds a status line ``HTTP/1.x CODE REASON``, header lines ``Name: value``, an
   empty line, then the body. Lines may end with CRLF or LF. A ``Content-Length`` must match
   the body. The whole file must fit HAProxy's 16 kB buffer.
4. An empty file is HAProxy's way to answer nothing: the connection is closed without a byte
   (``ErrorFile.is_empty``).
"""

from __future__ import annotations

import os
import re

from geoproxy.config.model import ErrorFile, Location

ERRORFILE_CODES = (200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502,
                   503, 504)
MAX_SIZE = 16384
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5]\d\d)(?: ([^\r\n]*))?")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*?)[ \t]*")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class ErrorFileError(Exception):
    """The file cannot be used; the message follows HAProxy's ``errorfile : ...`` texts."""


def read_errorfile(status: int, path: str, config_dir: str, location: Location) -> ErrorFile:
    """Read, parse and check the error page for ``status`` (see the module rules)."""
    if status not in ERRORFILE_CODES:
        raise ErrorFileError(f"errorfile : status code '{status}' not handled.")
    full_path = path if os.path.isabs(path) else os.path.join(config_dir, path)
    try:
        with open(full_path, "rb") as handle:
            data = handle.read(MAX_SIZE + 1)
    except OSError as exc:
        raise ErrorFileError(
            f"errorfile : error opening file '{path}' ({exc.strerror}).") from None
    if len(data) > MAX_SIZE:
        raise ErrorFileError(f"errorfile : '{path}': file too big (more than {MAX_SIZE} bytes)")
    if not data:
        return ErrorFile(status, path, data, location)
    try:
        code, reason, headers, body = parse_response(data)
    except ValueError as exc:
        raise ErrorFileError(f"errorfile : '{path}': {exc}") from None
    return ErrorFile(status, path, data, location, code, reason, headers, body)


def parse_response(data: bytes) -> tuple[int, str, tuple[tuple[str, str], ...], bytes]:
    """Split a whole HTTP/1.x response into status, reason, headers and body. Raises
    ``ValueError`` saying what is wrong."""
    end = _HEAD_END.search(data)
    if end is None:
        raise ValueError("unable to parse headers: no empty line ends the headers")
    head, body = data[:end.start()], data[end.end():]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        raise ValueError(
            "unable to parse headers: the first line is not a status line 'HTTP/1.x CODE REASON'")
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        header = _HEADER.fullmatch(line)
        if header is None:
            raise ValueError(f"unable to parse headers: line {number} is not 'Name: value'")
        headers.append((header.group(1).decode("ascii"), header.group(2).decode("latin-1")))
    _check_length(headers, body)
    reason = (status.group(2) or b"").decode("latin-1")
    return int(status.group(1)), reason, tuple(headers), body


def _check_length(headers: list[tuple[str, str]], body: bytes) -> None:
    for name, value in headers:
        if name.lower() == "content-length":
            if not value.isdigit() or int(value) != len(body):
                raise ValueError(f"Content-Length is '{value}' but the body has "
                                 f"{len(body)} bytes")
