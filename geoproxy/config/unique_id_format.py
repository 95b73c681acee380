"""The log-format strings of ``unique-id-format``, parsed at load time (pure).

Rules (HAProxy's ``parse_logformat()``, restricted to what a request id is built from):
1. Text is copied; ``%%`` is a ``%``; a run of spaces is one separator, and separators at the
   start or end of the output, or next to another separator, print nothing.
2. ``%VAR`` is a variable, ``%{FLAGS}VAR`` one with flags. ``%{+X}o`` sets flags for every
   variable after it. The only flag geoproxy knows is ``X``: numbers and addresses in upper-case
   hexadecimal (``%04X`` numbers, addresses byte by byte), as HAProxy prints them.
3. Variables: ``ci cp fi fp`` (client and frontend address and port), ``Ts`` and ``ms`` (the
   accept date, seconds and milliseconds), ``t`` (the accept date, ``01/Dec/2026:21:40:52.164``),
   ``rt`` (request counter), ``pid``, ``H`` (host name), ``f`` and ``ft`` (frontend),
   ``b`` (backend). ``%[uuid]``/``%[uuid(4)]`` is a random UUID, ``%[rand]`` a random number.
   Anything else is refused by name at load time. (The rules engine's log-format evaluator,
   when it lands, takes these strings over.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VARIABLES = frozenset({"ci", "cp", "fi", "fp", "Ts", "ms", "t", "rt", "pid", "H", "f", "ft",
                       "b"})
SAMPLES = {"uuid": "uuid", "uuid(4)": "uuid", "rand": "rand", "rand()": "rand"}
_FLAGS = re.compile(r"(?:[+-][A-Za-z])*")


class FormatError(Exception):
    """A format geoproxy cannot evaluate; the message names what."""


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


@dataclass(frozen=True, slots=True)
class Separator:
    pass


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``%VAR`` or ``%[sample]`` (``name`` is then the sample's kind: uuid, rand)."""

    name: str
    hexa: bool = False


Node = Literal | Separator | Variable


def parse_format(text: str) -> tuple[Node, ...]:
    """The nodes of ``text`` (module rules). Raises ``FormatError``."""
    nodes: list[Node] = []
    hexa_default = False
    pos = 0
    literal: list[str] = []

    def flush() -> None:
        if literal:
            nodes.append(Literal("".join(literal)))
            literal.clear()

    while pos < len(text):
        char = text[pos]
        if char == " ":
            flush()
            if not nodes or not isinstance(nodes[-1], Separator):
                nodes.append(Separator())
            pos += 1
            continue
        if char != "%":
            literal.append(char)
            pos += 1
            continue
        if text.startswith("%%", pos):
            literal.append("%")
            pos += 2
            continue
        flush()
        pos += 1
        flags = ""
        if text.startswith("{", pos):
            end = text.find("}", pos)
            if end < 0:
                raise FormatError(f"missing '}}' after '%{{' in '{text}'")
            flags = text[pos + 1:end]
            pos = end + 1
            if not _FLAGS.fullmatch(flags) or any(f not in "X" for f in flags[1::2]):
                raise FormatError(f"flags '{flags}' are not supported by geoproxy (only '+X' "
                                  "and '-X')")
        hexa = _hexa(flags, hexa_default)
        if text.startswith("[", pos):
            end = text.find("]", pos)
            if end < 0:
                raise FormatError(f"missing ']' after '%[' in '{text}'")
            sample = text[pos + 1:end]
            if sample not in SAMPLES:
                raise FormatError(f"sample '%[{sample}]' is not supported by geoproxy in "
                                  f"unique-id-format (supported: {', '.join(SAMPLES)})")
            nodes.append(Variable(SAMPLES[sample], hexa))
            pos = end + 1
            continue
        match = re.compile(r"[A-Za-z]+").match(text, pos)
        if match is None:
            raise FormatError(f"missing variable name after '%' in '{text}'")
        name = match.group(0)
        pos = match.end()
        if name == "o":
            hexa_default = hexa
            continue
        if name not in VARIABLES:
            raise FormatError(f"variable '%{name}' is not supported by geoproxy in "
                              f"unique-id-format (supported: {', '.join(sorted(VARIABLES))})")
        nodes.append(Variable(name, hexa))
    flush()
    return tuple(nodes)


def _hexa(flags: str, default: bool) -> bool:
    hexa = default
    for sign, letter in zip(flags[::2], flags[1::2], strict=True):
        if letter == "X":
            hexa = sign == "+"
    return hexa
