"""Reading ``name(arg,arg)`` calls (fetches, converters, ``set-var(...)``) and checking their
arguments against a signature, at load time (pure but for the ``read_file`` it is given).

Rules:
1. Arguments are split on commas; a backslash escapes the next character and single or double
   quotes protect commas, as HAProxy's ``make_arg_list`` reads them.
2. A signature is a string of argument kinds, required ones before a ``|``, optional ones
   after: ``s`` any string, ``S`` a non-empty string, ``i`` an integer, ``r`` a regular
   expression, ``m`` a map file (read now, through ``ParseContext.read_file``), ``v`` a
   variable name (``SCOPE.NAME``). ``*`` at the end repeats the last kind.
3. Errors are ``RuleError`` with HAProxy's wording where it has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from geoproxy.rules.spec import ArgValue, MapFile

_CALL: Final = re.compile(r"([A-Za-z0-9_.+-]+)(?:\((.*)\))?", re.DOTALL)
_VAR: Final = re.compile(r"(proc|sess|txn|req|res)\.[A-Za-z0-9._]+")
VAR_SCOPES: Final = ("proc", "sess", "txn", "req", "res")


class RuleError(ValueError):
    """A rule, fetch, converter or format HAProxy or geoproxy refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What parsing needs from the configuration: files (map files, ``-f`` pattern files,
    ``return file``), the environment (``env()``), whether the rule runs on the response
    (``response``), and where to put warnings."""

    read_file: Callable[[str], str] = field(default=lambda path: _no_files(path))
    env: Mapping[str, str] = field(default_factory=dict)
    response: bool = False
    warn: Callable[[str], None] = field(default=lambda message: None)

    def on_response(self, response: bool) -> ParseContext:
        return ParseContext(self.read_file, self.env, response, self.warn)


def _no_files(path: str) -> str:
    raise OSError(f"no such file '{path}'")


def arg_int(value: ArgValue) -> int:
    """An argument the signature checked as an integer."""
    return value if isinstance(value, int) else int(str(value))


def split_call(token: str) -> tuple[str, str | None]:
    """``name(args)`` -> (name, args text); ``name`` -> (name, None)."""
    match = _CALL.fullmatch(token)
    if match is None:
        raise RuleError(f"invalid expression '{token}'")
    return match.group(1), match.group(2)


def split_args(text: str) -> list[str]:
    """The arguments of a call (rule 1)."""
    args: list[str] = []
    current: list[str] = []
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index + 1])
            index += 2
            continue
        if quote:
            if char == quote:
                quote = ""
            else:
                current.append(char)
        elif char in "'\"":
            quote = char
        elif char == ",":
            args.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    args.append("".join(current))
    return args


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split ``text`` on ``separator`` outside parentheses (``fetch(a,b),conv(c)``)."""
    parts: list[str] = []
    depth = 0
    start = 0
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def parse_args(what: str, name: str, signature: str, raw: str | None,
               context: ParseContext) -> tuple[ArgValue, ...]:
    """Check the arguments ``raw`` of ``name`` against ``signature`` (rule 2)."""
    required, _, optional = signature.partition("|")
    repeat = optional.endswith("*") or required.endswith("*")
    kinds = (required + optional).rstrip("*")
    texts = [] if raw is None else split_args(raw)
    if raw is not None and raw == "" and not kinds:
        texts = []
    if raw == "" and kinds:
        texts = [""] if required.rstrip("*") else []
    minimum = len(required.rstrip("*"))
    if len(texts) < minimum:
        plural = "s" if minimum > 1 else ""
        raise RuleError(f"{what} '{name}' expects {minimum} argument{plural} "
                        f"({_describe(required.rstrip('*'))}), got {len(texts)}")
    if len(texts) > len(kinds) and not repeat:
        raise RuleError(f"{what} '{name}' takes at most {len(kinds)} argument(s), got "
                        f"{len(texts)} ('{raw}')")
    values: list[ArgValue] = []
    for index, text in enumerate(texts):
        kind = kinds[min(index, len(kinds) - 1)] if kinds else "s"
        values.append(_arg(what, name, kind, text, context))
    return tuple(values)


def _describe(kinds: str) -> str:
    names = {"s": "string", "S": "string", "i": "integer", "r": "regex", "m": "map file",
             "v": "variable name"}
    return ", ".join(names.get(k, k) for k in kinds)


def _arg(what: str, name: str, kind: str, text: str, context: ParseContext) -> ArgValue:
    if kind == "S" and not text:
        raise RuleError(f"{what} '{name}' : missing argument")
    if kind == "i":
        if not re.fullmatch(r"[-+]?\d+", text.strip()):
            raise RuleError(f"{what} '{name}' : expects an integer argument (got '{text}')")
        return int(text)
    if kind == "r":
        try:
            re.compile(text)
        except re.error as exc:
            raise RuleError(f"{what} '{name}' : invalid regex '{text}' ({exc.msg})") from None
        return text
    if kind == "v":
        return check_var_name(text)
    if kind == "m":
        return read_map(text, context)
    return text


def check_var_name(text: str) -> str:
    """A ``SCOPE.NAME`` variable name, or ``RuleError``."""
    if not _VAR.fullmatch(text):
        raise RuleError(f"invalid variable name '{text}' (expected SCOPE.NAME, SCOPE being "
                        f"one of {', '.join(VAR_SCOPES)})")
    return text


def read_map(path: str, context: ParseContext) -> MapFile:
    """A map file: ``KEY VALUE`` per line, ``#`` comments and blank lines skipped, the value
    being the rest of the line after the blanks that follow the key (HAProxy's map format)."""
    if not path:
        raise RuleError("missing map file name")
    try:
        text = context.read_file(path)
    except OSError as exc:
        raise RuleError(f"failed to open map file '{path}' ({exc})") from None
    entries: list[tuple[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip(" \t\r")
        if not stripped or stripped.startswith("#"):
            continue
        key, value = re.match(r"([^ \t]+)[ \t]*(.*)", stripped).groups()  # type: ignore[union-attr]
        entries.append((key, value.strip(" \t")))
    return MapFile(path, tuple(entries))


def read_patterns(path: str, context: ParseContext) -> tuple[str, ...]:
    """An ACL pattern file (``-f``): one pattern per line, leading and trailing blanks
    removed, blank lines and ``#`` comments skipped."""
    try:
        text = context.read_file(path)
    except OSError as exc:
        raise RuleError(f"failed to open pattern file '{path}' ({exc})") from None
    patterns = []
    for line in text.splitlines():
        stripped = line.strip(" \t\r")
        if stripped and not stripped.startswith("#"):
            patterns.append(stripped)
    return tuple(patterns)
