"""What a keyword parser receives: one directive, and where to report to.

Rules:
1. A keyword parser reads one ``Line`` and changes one section draft. It reports an error by
   raising ``LineError`` with HAProxy's sentence (one error per line, as HAProxy stops reading a
   line at its first error) and a warning with ``Line.warn``; it never prints.
2. Messages name the keyword the way HAProxy does; ``Line.diagnostic`` adds the location.
3. ``Keyword`` tables are built once, at import, and map a keyword to its parser and to the
   section types it belongs to (HAProxy's ``cfg_kw_list`` and the manual's keyword matrix).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NoReturn, TypeVar

from geoproxy.config.lexer import Directive
from geoproxy.config.model import Diagnostic, Location
from geoproxy.config.tls_draft import TlsGlobalsDraft
from geoproxy.rules.calls import ParseContext

Section = TypeVar("Section")


class LineError(Exception):
    """The line is wrong; ``message`` says what was expected, in HAProxy's phrasing."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(slots=True)
class Line:
    """One directive being parsed. ``prefix`` is "no" or "default" when the line began with
    one of HAProxy's keyword modifiers (``no option redispatch``), else ""."""

    directive: Directive
    config_dir: str
    warnings: list[Diagnostic]
    prefix: str = ""
    # the environment the configuration expands (addresses expand it outside quotes too)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    # the global section's TLS settings read so far (crt-base, ssl-default-bind-*...)
    tls: TlsGlobalsDraft = field(default_factory=TlsGlobalsDraft)

    @property
    def keyword(self) -> str:
        return self.directive.keyword

    @property
    def args(self) -> tuple[str, ...]:
        return self.directive.args

    @property
    def location(self) -> Location:
        return self.directive.location

    def arg(self, index: int) -> str:
        return self.directive.arg(index)

    def warn(self, message: str) -> None:
        self.warnings.append(self.diagnostic(message))

    def diagnostic(self, message: str) -> Diagnostic:
        """A diagnostic for this line. DESIGN.md invariant 8: every message names its keyword.
        HAProxy's sentence is kept; when it does not name the keyword ("unexpected keyword
        'when' after switching rule"), the keyword goes in front, as HAProxy does elsewhere
        ("'timeout client' : ...")."""
        if self.keyword.lower() not in message.lower():
            message = f"'{self.keyword}' : {message}"
        return Diagnostic(self.location, self.keyword, message)

    def fail(self, message: str) -> NoReturn:
        raise LineError(message)

    def read_file(self, path: str) -> str:
        """A file a rule names (map, ``-f`` patterns, ``return file``), relative paths from
        the configuration's directory as ``errorfile`` reads them. Raises OSError."""
        with open(os.path.join(self.config_dir, path), encoding="utf-8",
                  errors="surrogateescape") as handle:
            return handle.read()

    def rules_context(self, response: bool = False) -> ParseContext:
        """What parsing a fetch, an ACL or a log-format string needs from this line."""
        return ParseContext(read_file=self.read_file, response=response, warn=self.warn)

    def at_most(self, count: int, name: str | None = None) -> None:
        """HAProxy's ``alertif_too_many_args``: at most ``count`` arguments after ``name``."""
        if len(self.args) > count:
            shown = name or self.keyword
            self.fail(f"'{shown}' cannot handle unexpected argument '{self.args[count]}'.")


@dataclass(frozen=True, slots=True)
class Keyword(Generic[Section]):
    """A keyword of one section type. ``in_defaults``/``frontend``/``backend`` say in which
    proxy sections it may appear (the manual's keyword matrix); ``strict`` makes a keyword used
    on the wrong side an error rather than HAProxy's usual "ignored" warning."""

    parse: Callable[[Section, Line], None]
    in_defaults: bool = True
    frontend: bool = True
    backend: bool = True
    strict: bool = False


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """HAProxy's "; did you mean 'x' maybe ?" when a close candidate exists, else ""."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}' maybe ?" if close else ""


def quoted_list(names: Iterable[str], last: str = "and") -> str:
    """``'a', 'b' and 'c'`` as HAProxy lists accepted words."""
    items = [f"'{name}'" for name in names]
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"
