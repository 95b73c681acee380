"""Reading HTTP header text the way HAProxy reads it: a quoted string (``"..."``, with ``\\``
escapes inside) never ends a value, so its commas and semicolons are not delimiters. Pure; shared
by the balancing policies (``hdr()`` hashing) and persistence (cookies, cacheability)."""

from __future__ import annotations

from collections.abc import Iterator


def find_unquoted(text: str, delimiters: str, start: int = 0, end: int | None = None) -> int:
    """The index of the first of ``delimiters`` in ``text[start:end]`` outside quotes, else
    ``end`` (the length of ``text`` when None)."""
    stop = len(text) if end is None else end
    quoted = escaped = False
    for index in range(start, stop):
        char = text[index]
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in delimiters:
            return index
    return stop


def header_values(value: str) -> Iterator[str]:
    """The comma-separated values of a header, trimmed of spaces and tabs."""
    start, length = 0, len(value)
    while True:
        comma = find_unquoted(value, ",", start, length)
        yield value[start:comma].strip(" \t")
        if comma >= length:
            return
        start = comma + 1
