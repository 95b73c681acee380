"""What the configuration parser makes of rules, fetches and formats: frozen values, no code.

Rules:
1. Everything here is a frozen, slotted dataclass that the configuration model holds. It says
   what a configuration line *means* (which fetch, which converters, which arguments, already
   checked); the runtime turns it into closures once, at start-up (``compile.py``).
2. Arguments are typed when they are parsed: integers are ``int``, files are read into
   ``MapFile`` / ``PatternFile`` values, so that the runtime never touches the file system.
3. Nothing here imports the rest of geoproxy: ``config.model`` imports these types.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MapFile:
    """A map file (``map(FILE)`` converters): its ``key value`` lines, in file order."""

    path: str
    entries: tuple[tuple[str, str], ...]


ArgValue = str | int | MapFile


@dataclass(frozen=True, slots=True)
class Call:
    """A fetch or a converter with its checked arguments: ``hdr(host)``, ``word(1,:)``."""

    name: str
    args: tuple[ArgValue, ...] = ()


@dataclass(frozen=True, slots=True)
class SampleExpr:
    """``FETCH[(ARGS)][,CONVERTER[(ARGS)]]...``; ``text`` is how the configuration wrote it."""

    fetch: Call
    converters: tuple[Call, ...]
    text: str


@dataclass(frozen=True, slots=True)
class MatchSpec:
    """How an ACL compares a sample to its patterns: the ``-m`` method (implied or named),
    ``-i``, and the patterns (from the line and from ``-f`` files, in that order)."""

    method: str
    patterns: tuple[str, ...]
    ignore_case: bool = False


# --------------------------------------------------------------------------------------------
# log-format strings


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


@dataclass(frozen=True, slots=True)
class Variable:
    """``%X`` / ``%{+Q}X``: one of HAProxy's log-format variables (``ci``, ``ST``, ``HM``...),
    with its flags (``Q`` quote, ``X`` hexadecimal, ``E`` escape)."""

    name: str
    quote: bool = False
    hexa: bool = False
    escape: bool = False


@dataclass(frozen=True, slots=True)
class Sample:
    """``%[expr]`` / ``%{+Q}[expr]``: a sample expression in a log-format string."""

    expr: SampleExpr
    quote: bool = False
    hexa: bool = False
    escape: bool = False


Segment = Literal | Variable | Sample


@dataclass(frozen=True, slots=True)
class LogFormat:
    """A log-format string, cut into its parts; ``text`` is the string as written."""

    segments: tuple[Segment, ...]
    text: str

    @property
    def constant(self) -> str | None:
        """The string itself when it holds no variable and no sample, else None."""
        if all(isinstance(s, Literal) for s in self.segments):
            return "".join(s.text for s in self.segments if isinstance(s, Literal))
        return None


# --------------------------------------------------------------------------------------------
# actions (one dataclass per family; ``keyword`` is the action as written: "set-header")


@dataclass(frozen=True, slots=True)
class HeaderAction:
    """``set-header``/``add-header`` NAME FMT, ``del-header`` NAME [-m METH],
    ``replace-header``/``replace-value`` NAME REGEX FMT."""

    keyword: str
    name: str
    value: LogFormat | None = None
    regex: str | None = None
    method: str = "str"


@dataclass(frozen=True, slots=True)
class TargetAction:
    """``set-path``/``set-pathq``/``set-query``/``set-uri``/``set-method`` FMT and
    ``replace-path``/``replace-pathq``/``replace-uri`` REGEX FMT."""

    keyword: str
    value: LogFormat
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    """``redirect location|prefix|scheme TARGET [code N] [OPTIONS]``."""

    kind: str  # "location", "prefix" or "scheme"
    target: LogFormat
    code: int = 302
    drop_query: bool = False
    append_slash: bool = False
    set_cookie: str | None = None  # NAME[=VALUE]
    clear_cookie: str | None = None  # NAME[=]


@dataclass(frozen=True, slots=True)
class ReplyHeader:
    name: str
    value: LogFormat


@dataclass(frozen=True, slots=True)
class Reply:
    """``deny``/``return``/``tarpit``-like answers: status, content type, body and headers.

    ``body`` is a constant payload (``string``/``file``), ``body_format`` a log-format one
    (``lf-string``/``lf-file``); ``errorfile`` says the reply is the proxy's error page for
    ``status`` (``deny`` without payload, ``default-errorfiles``), ``raw`` a whole response
    read from an ``errorfile FILE`` argument.
    """

    status: int
    content_type: str | None = None
    body: bytes | None = None
    body_format: LogFormat | None = None
    headers: tuple[ReplyHeader, ...] = ()
    errorfile: bool = False
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """``deny``, ``return``, ``auth`` and ``use-service``: the rule answers the client."""

    keyword: str
    reply: Reply | None = None
    realm: str | None = None  # auth
    service: str | None = None  # use-service


@dataclass(frozen=True, slots=True)
class SetVar:
    """``set-var(SCOPE.NAME) EXPR``, ``set-var-fmt(SCOPE.NAME) FMT``, ``unset-var(...)``."""

    keyword: str
    variable: str  # "txn.name"
    expr: SampleExpr | None = None
    value: LogFormat | None = None


@dataclass(frozen=True, slots=True)
class SetStatus:
    """``set-status CODE [reason TEXT]``."""

    status: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Capture:
    """``http-request capture EXPR len N`` (a new slot) or ``... id N`` (a declared one)."""

    expr: SampleExpr
    slot: int
    length: int


@dataclass(frozen=True, slots=True)
class Simple:
    """Actions with no argument: ``allow``."""

    keyword: str


Action = (HeaderAction | TargetAction | Redirect | Answer | SetVar | SetStatus | Capture
          | Simple)


@dataclass(frozen=True, slots=True)
class CaptureSlot:
    """``capture request|response header NAME len N`` and ``declare capture``: one slot of
    the log's ``{...}`` fields; ``header`` is None for a slot filled by ``capture`` rules."""

    header: str | None
    length: int
