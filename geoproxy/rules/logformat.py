"""Log-format strings: ``%[fetch,conv]``, ``%ci``, ``%{+Q}r``... parsed at load time, compiled
once into a closure (pure).

Rules (configuration manual 8.2.4):
1. ``%%`` is a percent sign; ``%[EXPR]`` a sample expression; ``%NAME`` a variable (a run of
   letters); ``%{FLAGS}`` before either sets flags (``+Q`` quote, ``+X`` hexadecimal, ``+E``
   escape, ``-...`` clears). Any other text is literal. An unknown variable is an error.
2. In rules (header values, redirects, replies) an absent sample is an empty string and
   ``+Q`` does not quote, as HAProxy 2.6 builds them; in the access log an absent value is
   ``-`` and ``+Q`` quotes.
3. Variables read the ``Txn`` and, in the access log, the finished request's ``RequestLog``
   (``LogFacts``); a variable with no meaning yet (a timer in a request rule) shows ``-1``
   or ``-`` as HAProxy does.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from geoproxy.rules.calls import ParseContext, RuleError
from geoproxy.rules.expr import compile_expr, compile_text, parse_expr
from geoproxy.rules.fetch_ssl import TLS_FACTS
from geoproxy.rules.fetches import CompileEnv, request_path
from geoproxy.rules.spec import Literal, LogFormat, Sample, Segment, Variable
from geoproxy.rules.txn import Txn
from geoproxy.rules.values import show, to_bytes, to_str

Render = Callable[[Txn], str]


@dataclass(slots=True)
class LogFacts:
    """What the access log knows once the request ended, beyond the ``Txn``: the httplog
    fields (``geoproxy.proxy.httplog.RequestLog``) as plain values."""

    client: tuple[str, int] = ("", 0)
    accepted: float = 0.0
    frontend: str = ""
    backend: str = ""
    server: str | None = None
    timers: tuple[int, int, int, int, int] = (-1, -1, -1, -1, -1)  # TR Tw Tc Tr Ta
    status: int = -1
    bytes_sent: int = 0
    bytes_received: int = 0
    termination: str = "----"
    counters: tuple[int, int, int, int, str] = (0, 0, 0, 0, "0")  # ac fc bc sc rc
    queues: tuple[int, int] = (0, 0)
    request_line: str = ""
    captures: str = ""
    res_captures: str = ""


def parse_logformat(text: str, context: ParseContext) -> LogFormat:
    """Cut ``text`` into literals, variables and samples (rule 1). Raises ``RuleError``."""
    segments: list[Segment] = []
    literal: list[str] = []
    defaults = (False, False, False)  # %{+Q}o: flags of every later variable
    index = 0
    while index < len(text):
        char = text[index]
        if char != "%":
            literal.append(char)
            index += 1
            continue
        if text.startswith("%%", index):
            literal.append("%")
            index += 2
            continue
        index += 1
        flags = ""
        if text.startswith("{", index):
            end = text.find("}", index)
            if end < 0:
                raise RuleError(f"missing '}}' after '%{{' in log-format '{text}'")
            flags = text[index + 1 : end]
            index = end + 1
        quote, hexa, escape = _flags(flags, text, defaults)
        if text.startswith("o", index) and not text[index + 1 : index + 2].isalpha():
            defaults = (quote, hexa, escape)
            index += 1
            # %o is no field: the separators around it merge into one, as HAProxy's are
            if text.startswith(" ", index) and (literal[-1:] == [" "] or not literal):
                index += 1
            continue
        if literal:
            segments.append(Literal("".join(literal)))
            literal = []
        if text.startswith("[", index):
            end = _expression_end(text, index + 1)
            expr = parse_expr(text[index + 1 : end], context)
            segments.append(Sample(expr, quote, hexa, escape))
            index = end + 1
            continue
        start = index
        while index < len(text) and text[index].isalpha():
            index += 1
        name = text[start:index]
        if not name:
            raise RuleError(f"missing variable name after '%' in log-format '{text}'")
        if name not in VARIABLES:
            raise RuleError(f"no such format variable '{name}' in log-format '{text}'. "
                            "If you wanted to emit the '%' character verbatim, you need to "
                            "use '%%'")
        segments.append(Variable(name, quote, hexa, escape))
    if literal:
        segments.append(Literal("".join(literal)))
    return LogFormat(tuple(segments), text)


def _flags(flags: str, text: str, defaults: tuple[bool, bool, bool]
           ) -> tuple[bool, bool, bool]:
    quote, hexa, escape = defaults
    for item in filter(None, flags.replace("-", " -").replace("+", " +").split()):
        sign, name = item[0], item[1:]
        if sign not in "+-" or name not in ("Q", "X", "E", "M", "json", "cbor", "bin"):
            raise RuleError(f"unknown flag '{item}' in log-format '{text}'")
        on = sign == "+"
        quote, hexa, escape = (on if name == "Q" else quote, on if name == "X" else hexa,
                               on if name == "E" else escape)
    return quote, hexa, escape


def _expression_end(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "]" and depth == 0:
            return index
    raise RuleError(f"missing ']' after '%[' in log-format '{text}'")


def compile_logformat(spec: LogFormat, env: CompileEnv) -> Render:
    """The string a rule builds from ``spec`` for one request (rule 2)."""
    constant = spec.constant
    if constant is not None:
        return lambda txn: constant
    parts = tuple(_rule_part(segment, env) for segment in spec.segments)
    if len(parts) == 1:
        return parts[0]
    return lambda txn: "".join(part(txn) for part in parts)


def _rule_part(segment: Segment, env: CompileEnv) -> Render:
    if isinstance(segment, Literal):
        text = segment.text
        return lambda txn: text
    if isinstance(segment, Sample):
        if not segment.hexa:
            as_text = compile_text(segment.expr, env)
            return lambda txn: as_text(txn) or ""
        evaluate = compile_expr(segment.expr, env)
        return lambda txn: (to_bytes(v) or b"").hex().upper() if (
            v := evaluate(txn)) is not None else ""
    variable = VARIABLES[segment.name]
    if segment.quote and segment.name not in _UNQUOTED:
        return lambda txn: f'"{show(variable(txn, None))}"'
    return lambda txn: show(variable(txn, None))


def compile_access_log(spec: LogFormat, env: CompileEnv) -> Callable[[Txn, LogFacts], str]:
    """The access log line ``log-format`` builds once the request ended (rule 2)."""
    parts = tuple(_access_part(segment, env) for segment in spec.segments)
    return lambda txn, facts: "".join(part(txn, facts) for part in parts)


def _access_part(segment: Segment, env: CompileEnv) -> Callable[[Txn, LogFacts], str]:
    if isinstance(segment, Literal):
        text = segment.text
        return lambda txn, facts: text
    if isinstance(segment, Sample):
        evaluate = compile_expr(segment.expr, env)
        return _logged(lambda txn, facts: evaluate(txn), segment)
    return _logged(VARIABLES[segment.name], segment)


def _logged(read: Callable[[Txn, LogFacts | None], object], segment: Variable | Sample
            ) -> Callable[[Txn, LogFacts], str]:
    name = segment.name if isinstance(segment, Variable) else ""
    quote = segment.quote and name not in _UNQUOTED
    empty = "" if name in _EMPTY_AS_IS else "-"

    def part(txn: Txn, facts: LogFacts) -> str:
        value = read(txn, facts)
        text = to_str(value) if value is not None else None
        if text is None or text == "":
            return '""' if quote else empty
        if segment.hexa:
            text = (to_bytes(value) or b"").hex().upper()
        if segment.escape or quote:
            text = _escaped(text)
        return f'"{text}"' if quote else text

    return part


# variables HAProxy never quotes (numbers, states) and those it leaves empty rather than "-"
_UNQUOTED: Final = frozenset({
    "ts", "tsc", "ST", "B", "U", "TR", "Tq", "Th", "Ti", "Tw", "Tc", "Tr", "Ta", "Tt", "Td",
    "Tu", "Ts", "ms", "ac", "fc", "bc", "sc", "rc", "sq", "bq", "cp", "fp", "sp", "bp", "pid",
    "rt", "lc", "o",
})
_EMPTY_AS_IS: Final = frozenset({"HQ", "hr", "hs", "hrl", "hsl"})


def _escaped(text: str) -> str:
    return "".join(f"#{ord(c):02X}" if c in '"#' or ord(c) < 32 or ord(c) == 127 else c
                   for c in text)


# -- variables (rule 3) -------------------------------------------------------------------

Read = Callable[[Txn, LogFacts | None], object]
_HOSTNAME: Final = socket.gethostname()
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")


def _request_line(txn: Txn, facts: LogFacts | None) -> object:
    if facts is not None and facts.request_line:
        return facts.request_line
    method, uri, version = txn.request_line
    return f"{method} {uri} {version}"


def _uri(txn: Txn) -> str:
    return str(txn.environ.get("RAW_URI") or "")


def _query(txn: Txn) -> object:
    uri = _uri(txn)
    mark = uri.find("?")
    return uri[mark:] if mark >= 0 else ""


def _timer(index: int) -> Read:
    return lambda txn, facts: facts.timers[index] if facts is not None else -1


def _date(epoch: float, gmt: bool, millis: bool = True) -> str:
    seconds, ms = divmod(round(epoch * 1000), 1000)
    moment = time.gmtime(seconds) if gmt else time.localtime(seconds)
    text = (f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
            f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d}")
    if millis:
        text += f".{ms:03d}"
    if not gmt:
        return text if millis else text + time.strftime(" %z", moment)
    return text if millis else text + " +0000"


def _accepted(txn: Txn, facts: LogFacts | None) -> float:
    return facts.accepted if facts is not None and facts.accepted else txn.now or time.time()


def _total(txn: Txn, facts: LogFacts | None) -> object:
    if facts is None:
        return -1
    return facts.timers[4]


def _tls_field(txn: Txn, name: str) -> object:
    """A connection's TLS fact (``fetch_ssl.TlsFacts``), "" without TLS as HAProxy logs it."""
    facts = txn.environ.get(TLS_FACTS)
    return (getattr(facts, name, None) or "") if facts is not None else ""


VARIABLES: Final[dict[str, Read]] = {
    "ci": lambda txn, facts: txn.environ.get("REMOTE_ADDR", ""),
    "cp": lambda txn, facts: txn.environ.get("REMOTE_PORT", ""),
    "fi": lambda txn, facts: txn.environ.get("geoproxy.local_address")
    or txn.environ.get("SERVER_NAME", ""),
    "fp": lambda txn, facts: txn.environ.get("SERVER_PORT", ""),
    "f": lambda txn, facts: txn.frontend,
    "ft": lambda txn, facts: txn.frontend + "~" if TLS_FACTS in txn.environ else txn.frontend,
    "b": lambda txn, facts: txn.backend or txn.frontend,
    "s": lambda txn, facts: txn.server or "<NOSRV>",
    "si": lambda txn, facts: txn.environ.get("geoproxy.server_host", "-"),
    "sp": lambda txn, facts: txn.environ.get("geoproxy.server_port", "-"),
    "bi": lambda txn, facts: "-",
    "bp": lambda txn, facts: "-",
    "H": lambda txn, facts: _HOSTNAME,
    "HM": lambda txn, facts: txn.request_line[0],
    "HU": lambda txn, facts: txn.request_line[1],
    "HP": lambda txn, facts: request_path({"RAW_URI": txn.request_line[1]}),
    "HQ": lambda txn, facts: _query(txn),
    "HV": lambda txn, facts: txn.request_line[2],
    "r": _request_line,
    "ST": lambda txn, facts: facts.status if facts is not None else (txn.status or -1),
    "B": lambda txn, facts: facts.bytes_sent if facts is not None else 0,
    "U": lambda txn, facts: facts.bytes_received if facts is not None else 0,
    "TR": _timer(0), "Tq": _timer(0), "Th": lambda txn, facts: 0, "Ti": lambda txn, facts: 0,
    "Tw": _timer(1), "Tc": _timer(2), "Tr": _timer(3), "Ta": _timer(4), "Tt": _total,
    "Td": lambda txn, facts: -1 if facts is None else max(facts.timers[4] - sum(
        t for t in facts.timers[:4] if t > 0), 0),
    "Tu": lambda txn, facts: -1 if facts is None else facts.timers[4],
    "Ts": lambda txn, facts: int(_accepted(txn, facts)),
    "ms": lambda txn, facts: f"{int(_accepted(txn, facts) * 1000) % 1000:03d}",
    "t": lambda txn, facts: _date(_accepted(txn, facts), gmt=False),
    "tr": lambda txn, facts: _date(_accepted(txn, facts), gmt=False),
    "trl": lambda txn, facts: _date(_accepted(txn, facts), gmt=False, millis=False),
    "trg": lambda txn, facts: _date(_accepted(txn, facts), gmt=True, millis=False),
    "T": lambda txn, facts: _date(_accepted(txn, facts), gmt=True, millis=False),
    "Tl": lambda txn, facts: _date(_accepted(txn, facts), gmt=False, millis=False),
    "ts": lambda txn, facts: facts.termination[:2] if facts is not None else "--",
    "tsc": lambda txn, facts: facts.termination if facts is not None else "----",
    "ac": lambda txn, facts: facts.counters[0] if facts is not None else 0,
    "fc": lambda txn, facts: facts.counters[1] if facts is not None else 0,
    "bc": lambda txn, facts: facts.counters[2] if facts is not None else 0,
    "sc": lambda txn, facts: facts.counters[3] if facts is not None else 0,
    "rc": lambda txn, facts: facts.counters[4] if facts is not None else 0,
    "sq": lambda txn, facts: facts.queues[0] if facts is not None else 0,
    "bq": lambda txn, facts: facts.queues[1] if facts is not None else 0,
    "CC": lambda txn, facts: "-",
    "CS": lambda txn, facts: "-",
    "hr": lambda txn, facts: facts.captures if facts is not None else "",
    "hrl": lambda txn, facts: facts.captures.strip("{}").replace("|", " ") if facts else "",
    "hs": lambda txn, facts: facts.res_captures if facts is not None else "",
    "hsl": lambda txn, facts: facts.res_captures.strip("{}").replace("|", " ") if facts else "",
    "pid": lambda txn, facts: os.getpid(),
    "rt": lambda txn, facts: 0,
    "lc": lambda txn, facts: 0,
    "ID": lambda txn, facts: txn.environ.get("geoproxy.unique_id", ""),
    "o": lambda txn, facts: "",
    "sslc": lambda txn, facts: _tls_field(txn, "cipher"),  # the TLS cipher, HAProxy's %sslc
    "sslv": lambda txn, facts: _tls_field(txn, "protocol"),  # the TLS version, %sslv
}
