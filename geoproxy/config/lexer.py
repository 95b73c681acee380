"""Configuration text -> ``Directive`` lines, cut into words as HAProxy 2.x cuts them.

Rules (HAProxy's manual, sections 2.2 and 2.3; ``parse_line()`` in HAProxy's tools.c):
1. A line ends at LF, at CR, or at an unprotected ``#`` (a comment). Leading and trailing
   spaces and tabs are delimiters, as are runs of them between words. Blank lines and comment
   lines produce no directive.
2. Outside single quotes, a backslash escapes: ``\\<space>`` ``\\\\`` ``\\#`` ``\\'`` ``\\"``,
   ``\\t`` ``\\n`` ``\\r``, ``\\xHH``; ``\\$`` only inside double quotes. Any other backslash is
   kept as it is (``\\1`` stays ``\\1``, for regex back-references).
3. Double quotes ("weak") protect spaces, ``#`` and single quotes, and are the only place where
   environment variables expand: ``$NAME``, ``${NAME}``, ``${NAME-default}`` (the default
   replaces an unset variable, not an empty one), ``${NAME[*]}`` (a value with spaces becomes
   several words), and the pseudo-variables ``$.FILE``, ``$.LINE``, ``$.SECTION``. An unset
   variable expands to nothing.
4. Single quotes ("strong") protect everything; nothing inside them is interpreted.
5. Quotes may be glued to other text: ``a"b c"'d'`` is the one word ``ab cd``.
6. An empty word (``""``, or a variable that expanded to nothing) is an error, as in HAProxy 2.8+:
   HAProxy's keyword parsers read an empty argument as the end of the line, which silently drops
   what follows it. A ``${NAME[*]}`` that expands to nothing produces no word at all.
7. Lexical errors are reported with their 1-based column, then the line and a caret, as HAProxy
   prints them; the line produces no directive.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from geoproxy.config.model import Diagnostic, Location

_SPACES = " \t\n\v\f"
_HEX = "0123456789abcdefABCDEF"
# variable names are ASCII, as C's isalpha()/isalnum() read them
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_SIMPLE_ESCAPES = {" ": " ", "\\": "\\", "t": "\t", "n": "\n", "r": "\r", "#": "#",
                   "'": "'", '"': '"'}
_PSEUDO_VARIABLES = (".FILE", ".LINE", ".SECTION")

# The keywords that open a section: `.SECTION` follows them.
SECTION_KEYWORDS = frozenset({
    "global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
    "mailers", "program", "http-errors", "cache", "ring", "log-forward", "fcgi-app",
    "dynamic-update", "namespace_list", "crt-store", "traces",
})


@dataclass(frozen=True, slots=True)
class Directive:
    """One configuration line, cut into words: ``keyword`` is the first word, ``args`` the rest.

    ``columns`` holds the 1-based column where each word (keyword first) starts, for messages.
    """

    location: Location
    keyword: str
    args: tuple[str, ...]
    columns: tuple[int, ...] = ()

    @property
    def words(self) -> tuple[str, ...]:
        return (self.keyword, *self.args)

    def arg(self, index: int) -> str:
        """The argument at ``index`` (0 is the first after the keyword), or "" when absent,
        the way HAProxy's ``args[]`` reads past the end of a line."""
        return self.args[index] if index < len(self.args) else ""


class LexError(Exception):
    """A line that cannot be cut into words; ``column`` is 1-based."""

    def __init__(self, problem: str, column: int) -> None:
        self.problem = problem
        self.column = column
        super().__init__(f"{problem} at position {column}")


@dataclass(slots=True)
class _Word:
    text: list[str]
    column: int
    # A word made only of quotes and `${NAME[*]}` expansions that produced nothing is dropped.
    only_expansions: bool = True
    expanded: bool = False


class _LineCutter:
    """Cuts one line; see the module rules. One instance per line."""

    def __init__(self, line: str, env: Mapping[str, str], pseudo: Mapping[str, str]) -> None:
        self.line = line
        self.env = env
        self.pseudo = pseudo
        self.pos = 0
        self.words: list[_Word] = []
        self.current: _Word | None = None

    def cut(self) -> list[tuple[str, int]]:
        line, quote, quote_start = self.line, "", 0
        while self.pos < len(line):
            char = line[self.pos]
            if char == "#" and not quote:
                break
            if char in _SPACES and not quote:
                self.current = None
                self.pos += 1
            elif char in "\"'" and (not quote or quote == char):
                self._word()
                quote, quote_start = ("" if quote else char), self.pos
                self.pos += 1
            elif char == "\\" and quote != "'":
                self._escape(in_double_quotes=quote == '"')
            elif char == "$" and quote == '"':
                self._variable()
            else:
                self._emit(char)
                self.pos += 1
        if quote:
            raise LexError("unmatched quote", quote_start + 1)
        return [("".join(w.text), w.column) for w in self.words
                if w.text or not (w.expanded and w.only_expansions)]

    def _word(self) -> _Word:
        if self.current is None:
            self.current = _Word([], self.pos + 1)
            self.words.append(self.current)
        return self.current

    def _emit(self, text: str) -> None:
        word = self._word()
        word.text.append(text)
        word.only_expansions = False

    def _escape(self, in_double_quotes: bool) -> None:
        line, pos = self.line, self.pos
        following = line[pos + 1] if pos + 1 < len(line) else ""
        if following in _SIMPLE_ESCAPES:
            self._emit(_SIMPLE_ESCAPES[following])
            self.pos += 2
        elif following == "$" and in_double_quotes:
            self._emit("$")
            self.pos += 2
        elif following == "x":
            digits = line[pos + 2:pos + 4]
            if len(digits) != 2 or any(c not in _HEX for c in digits):
                raise LexError("truncated or invalid hexadecimal sequence", pos + 1)
            self._emit(chr(int(digits, 16)))
            self.pos += 4
        else:
            self._emit("\\")
            self.pos += 1

    def _variable(self) -> None:
        line = self.line
        start = self.pos
        pos = start + 1
        brace = pos < len(line) and line[pos] == "{"
        if brace:
            pos += 1
        name_start = pos
        if pos >= len(line) or not (line[pos] in _NAME_START or line[pos] == "."):
            raise LexError("forbidden first char in environment variable name", pos + 1)
        if line[pos] == ".":
            pos += 1
        while pos < len(line) and line[pos] in _NAME_CHARS:
            pos += 1
        name = line[name_start:pos]
        if name.startswith(".") and name not in _PSEUDO_VARIABLES:
            raise LexError(f"unknown pseudo-variable '{name}'", name_start + 1)
        value = self.pseudo.get(name) if name.startswith(".") else self.env.get(name)
        expand = False
        if brace and line.startswith("[", pos):
            if not line.startswith("[*]", pos):
                raise LexError("truncated or invalid word expansion sequence", pos + 1)
            expand, pos = True, pos + 3
        if brace:
            pos, value = self._close_brace(start + 1, pos, value)
        self.pos = pos
        self._emit_value(value or "", expand)

    def _close_brace(self, brace_pos: int, pos: int, value: str | None) -> tuple[int, str | None]:
        line = self.line
        end = line.find("}", pos)
        if end < 0 or (end > pos and line[pos] != "-"):
            raise LexError("unmatched brace in environment variable name", brace_pos + 1)
        if end > pos and value is None:
            value = line[pos + 1:end]
        return end + 1, value

    def _emit_value(self, value: str, expand: bool) -> None:
        if not expand:
            self._emit(value)
            return
        self._word().expanded = True
        for index, part in enumerate(value.split()):
            if index:
                self.current = None
            word = self._word()
            word.text.append(part)
            word.expanded = True


def cut_line(line: str, env: Mapping[str, str],
             pseudo: Mapping[str, str] | None = None) -> list[tuple[str, int]]:
    """Cut one line (without its end of line) into ``(word, column)`` pairs. Raises
    ``LexError``."""
    return _LineCutter(line, env, pseudo or {}).cut()


def lex(text: str, path: str,
        env: Mapping[str, str] | None = None) -> tuple[list[Directive], list[Diagnostic]]:
    """Cut a whole configuration into directives, collecting every lexical error.

    ``env`` defaults to ``os.environ``; ``path`` is only used in locations and ``$.FILE``.
    """
    variables = os.environ if env is None else env
    directives: list[Directive] = []
    errors: list[Diagnostic] = []
    section = ""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("\r", 1)[0]
        location = Location(path, number)
        pseudo = {".FILE": path, ".LINE": str(number), ".SECTION": section}
        try:
            words = cut_line(line, variables, pseudo)
        except LexError as exc:
            errors.append(_lex_diagnostic(location, line, exc))
            continue
        if not words:
            continue
        empty = next((i for i, (word, _) in enumerate(words) if not word), None)
        if empty is not None:
            errors.append(Diagnostic(location, words[0][0], (
                f"'{words[0][0]}' : argument number {empty} at position {words[empty][1]} is "
                "empty and marks the end of the argument list")))
            continue
        directive = Directive(location, words[0][0], tuple(w for w, _ in words[1:]),
                              tuple(c for _, c in words))
        if directive.keyword in SECTION_KEYWORDS:
            section = directive.arg(0) or directive.keyword
        directives.append(directive)
    return directives, errors


def _lex_diagnostic(location: Location, line: str, exc: LexError) -> Diagnostic:
    # HAProxy shows the line without its indentation, the caret under the culprit.
    shown = line.lstrip(_SPACES)
    indent = len(line) - len(shown)
    caret = " " * max(exc.column - 1 - indent, 0) + "^"
    return Diagnostic(location, "", f"{exc}:\n  {shown.replace(chr(9), ' ')}\n  {caret}")
