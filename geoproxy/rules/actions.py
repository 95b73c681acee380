"""The action table of ``http-request``, ``http-response`` and ``http-after-response``: each
action's parser (load time) and where it may run; ``run.py`` holds what each one does.

Rules (configuration manual 4.2, ``http-request``):
1. A rule is ``ACTION [ARGS] [if|unless COND]``. Each action reads its own arguments; what
   follows them must be ``if``/``unless`` or nothing.
2. ``ACTIONS`` maps an action name to its parser and its sides (``request``, ``response``,
   ``after``). Names written with a parenthesis (``set-var(txn.x)``) are looked up by what
   precedes it. To add an action (``track-sc0``...): one entry here and one in ``run.py``.
3. Values are log-format strings (``%[...]``) where HAProxy takes one: header values,
   ``set-path``..., redirect targets, ``return hdr`` and ``lf-string``.
4. An action HAProxy has and geoproxy does not is refused with its reason (``REFUSED``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from geoproxy.rules.calls import ParseContext, RuleError, check_var_name
from geoproxy.rules.expr import parse_expr
from geoproxy.rules.logformat import parse_logformat
from geoproxy.rules.run import (
    Step,
    StepContext,
    answer_step,
    capture_step,
    header_step,
    redirect_step,
    set_status_step,
    set_var_step,
    simple_step,
    target_step,
)
from geoproxy.rules.spec import (
    Action,
    Answer,
    Capture,
    CaptureSlot,
    HeaderAction,
    Redirect,
    Reply,
    ReplyHeader,
    SetStatus,
    SetVar,
    Simple,
    TargetAction,
)

REQUEST, RESPONSE, AFTER = "request", "response", "after"
_REDIRECT_CODES: Final = (301, 302, 303, 307, 308)
# the statuses HAProxy has a built-in page for (``deny_status``, ``default-errorfiles``)
ERROR_STATUSES: Final = frozenset({200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 421, 422,
                                   425, 429, 500, 501, 502, 503, 504})
SERVICES: Final = ("prometheus-exporter",)


@dataclass(slots=True)
class ActionLine:
    """The words of one rule after the action name, as an action parser consumes them."""

    name: str  # the action as written, "set-var(txn.x)" included
    words: tuple[str, ...]
    context: ParseContext
    side: str
    index: int = 0
    # the proxy's capture slots so far (``http-request capture`` adds one); set by the caller
    capture_slots: list[CaptureSlot] | None = None

    def next(self, what: str) -> str:
        if self.index >= len(self.words) or self.words[self.index] in ("if", "unless"):
            raise RuleError(f"'{self.name}' expects {what}")
        word = self.words[self.index]
        self.index += 1
        return word

    def peek(self) -> str:
        return self.words[self.index] if self.index < len(self.words) else ""

    @property
    def argument(self) -> str:
        """What the parenthesis of the name holds: ``txn.x`` of ``set-var(txn.x)``."""
        _, _, rest = self.name.partition("(")
        if not rest.endswith(")") or not rest[:-1]:
            raise RuleError(f"'{self.name}' expects a variable name in parentheses")
        return rest[:-1]


Parser = Callable[[ActionLine], Action]


@dataclass(frozen=True, slots=True)
class ActionDef:
    """One action: its parser (load time), its step builder (start-up, ``run.py``) and the
    rule lists it may appear in."""

    parse: Parser
    step: Callable[[Any, StepContext], Step]
    sides: frozenset[str]


def _header(line: ActionLine) -> Action:
    name = line.next("a header name and a value")
    if line.side == REQUEST and "_" in name:
        # the worker hands request headers over as WSGI keys, where 'x_a' and 'x-a' are one
        raise RuleError(f"'{line.name}': request header names with '_' ('{name}') are not "
                        "supported by geoproxy (its workers drop such request headers, as "
                        "gunicorn does)")
    if line.name in ("set-header", "add-header"):
        value = parse_logformat(line.next("a header name and a value"), line.context)
        return HeaderAction(line.name, name, value)
    if line.name == "del-header":
        method = "str"
        if line.peek() == "-m":
            line.index += 1
            method = line.next("a matching method after '-m'")
            if method not in ("str", "beg", "end", "sub", "reg"):
                raise RuleError(f"'del-header': unknown matching method '{method}' (expected "
                                "'str', 'beg', 'end', 'sub' or 'reg')")
        return HeaderAction(line.name, name, method=method)
    regex = _regex(line, line.next("a header name, a regex and a replacement"))
    value = parse_logformat(line.next("a header name, a regex and a replacement"), line.context)
    return HeaderAction(line.name, name, value, regex)


def _regex(line: ActionLine, text: str) -> str:
    import re

    try:
        re.compile(text)
    except re.error as exc:
        raise RuleError(f"'{line.name}': invalid regex '{text}' ({exc.msg})") from None
    return text


def _target(line: ActionLine) -> Action:
    if line.name.startswith("replace-"):
        regex = _regex(line, line.next("a regex and a replacement"))
        value = parse_logformat(line.next("a regex and a replacement"), line.context)
        return TargetAction(line.name, value, regex)
    return TargetAction(line.name, parse_logformat(line.next("a value"), line.context))


def _redirect(line: ActionLine) -> Action:
    return parse_redirect(line)


def parse_redirect(line: ActionLine) -> Redirect:
    """``redirect location|prefix|scheme TARGET [code N] [OPTIONS]`` (also the ``redirect``
    keyword of proxies); as in HAProxy the words may come in any order
    (``redirect code 301 prefix / drop-query``)."""
    kind: str | None = None
    target = None
    code, drop, slash, set_cookie, clear_cookie = 302, False, False, None, None
    expected = ("'redirect': expects 'code', 'prefix', 'location', 'scheme', 'set-cookie', "
                "'clear-cookie', 'drop-query' or 'append-slash'")
    while line.peek() and line.peek() not in ("if", "unless"):
        option = line.next("an option")
        if option in ("location", "prefix", "scheme"):
            kind = option
            target = parse_logformat(line.next(f"an argument after '{option}'"), line.context)
        elif option == "code":
            text = line.next("a code after 'code'")
            if not text.isdigit() or int(text) not in _REDIRECT_CODES:
                raise RuleError(f"'redirect': unsupported HTTP code '{text}' (expected one of "
                                "301, 302, 303, 307 or 308)")
            code = int(text)
        elif option == "drop-query":
            drop = True
        elif option == "append-slash":
            slash = True
        elif option == "set-cookie":
            set_cookie = line.next("a cookie after 'set-cookie'")
        elif option == "clear-cookie":
            clear_cookie = line.next("a cookie after 'clear-cookie'")
        elif option == "ignore-empty":
            raise RuleError("'redirect': 'ignore-empty' is not supported by geoproxy")
        else:
            raise RuleError(f"{expected} (was '{option}')")
    if kind is None or target is None:
        raise RuleError(f"{expected}: 'location', 'prefix' or 'scheme' is missing")
    return Redirect(kind, target, code, drop, slash, set_cookie, clear_cookie)


def _reply(line: ActionLine, status: int, allow_deny_status: bool) -> Reply:
    """The reply arguments of ``return`` and ``deny`` (HAProxy's ``http_parse_http_reply``)."""
    content_type: str | None = None
    body: bytes | None = None
    body_format = None
    raw: bytes | None = None
    errorfile = False
    payload = False
    headers: list[ReplyHeader] = []
    while line.peek() and line.peek() not in ("if", "unless"):
        word = line.next("an argument")
        if word == "status" or (word == "deny_status" and allow_deny_status):
            text = line.next(f"a status code after '{word}'")
            if not text.isdigit() or not 200 <= int(text) <= 599:
                raise RuleError(f"'{line.name}': Unexpected status code '{text}'.")
            status = int(text)
        elif word == "content-type":
            content_type = line.next("a content type")
        elif word in ("string", "lf-string", "file", "lf-file", "errorfile",
                      "default-errorfiles", "errorfiles"):
            if payload:
                raise RuleError(f"'{line.name}': payload already defined, '{word}' "
                                "is unexpected")
            payload = True
            if word == "default-errorfiles":
                errorfile = True
            elif word == "errorfiles":
                raise RuleError(f"'{line.name}': 'errorfiles' (http-errors sections) is not "
                                "supported by geoproxy")
            elif word == "string":
                body = line.next("a string").encode("utf-8", "surrogateescape")
            elif word == "lf-string":
                body_format = parse_logformat(line.next("a format string"), line.context)
            else:
                text = _read(line, line.next("a file name"))
                if word == "file":
                    body = text.encode("utf-8", "surrogateescape")
                elif word == "lf-file":
                    body_format = parse_logformat(text, line.context)
                else:
                    raw = text.encode("utf-8", "surrogateescape")
        elif word == "hdr":
            name = line.next("a header name and a value after 'hdr'")
            value = parse_logformat(line.next("a header value after 'hdr'"), line.context)
            if name.lower() in ("content-length", "content-type", "transfer-encoding"):
                raise RuleError(f"'{line.name}': header '{name}' ignored")
            headers.append(ReplyHeader(name, value))
        else:
            raise RuleError(f"'{line.name}': expects 'status', 'content-type', 'string', "
                            f"'lf-string', 'file', 'lf-file', 'errorfile', "
                            f"'default-errorfiles' or 'hdr' (got '{word}')")
    if (body is not None or body_format is not None) and content_type is None:
        raise RuleError(f"'{line.name}': a content-type must be defined with a payload")
    if errorfile and status not in ERROR_STATUSES:
        raise RuleError(f"'{line.name}': status code '{status}' not handled by default with "
                        "'default-errorfiles' argument.")
    return Reply(status, content_type, body, body_format, tuple(headers), errorfile, raw)


def _read(line: ActionLine, path: str) -> str:
    try:
        return line.context.read_file(path)
    except OSError as exc:
        raise RuleError(f"'{line.name}': failed to open file '{path}' ({exc})") from None


def _deny(line: ActionLine) -> Action:
    # HAProxy answers 403 to a denied request and 502 to a denied response
    reply = _reply(line, 502 if line.side == RESPONSE else 403, allow_deny_status=True)
    if reply.body is None and reply.body_format is None and reply.raw is None:
        if reply.status not in ERROR_STATUSES:
            raise RuleError(f"'deny': status code '{reply.status}' not handled by default "
                            "with 'default-errorfiles' argument.")
        reply = Reply(reply.status, reply.content_type, headers=reply.headers, errorfile=True)
    return Answer("deny", reply)


def _return(line: ActionLine) -> Action:
    return Answer("return", _reply(line, 200, allow_deny_status=False))


def _auth(line: ActionLine) -> Action:
    realm = None
    if line.peek() == "realm":
        line.index += 1
        realm = line.next("a realm after 'realm'")
    return Answer("auth", realm=realm)


def _use_service(line: ActionLine) -> Action:
    service = line.next("a service name")
    if service not in SERVICES:
        reason = "geoproxy does not run Lua" if service.startswith("lua.") else \
            f"geoproxy has the services {', '.join(SERVICES)}"
        raise RuleError(f"'use-service': service '{service}' is not supported: {reason}")
    return Answer("use-service", service=service)


def _set_var(line: ActionLine) -> Action:
    keyword = line.name.partition("(")[0]
    variable = check_var_name(line.argument.partition(",")[0])
    if "," in line.argument:
        raise RuleError(f"'{keyword}': conditions on variables ('{line.argument}') are not "
                        "supported by geoproxy")
    if keyword == "unset-var":
        return SetVar(keyword, variable)
    text = line.next("an expression")
    if keyword == "set-var-fmt":
        return SetVar(keyword, variable, value=parse_logformat(text, line.context))
    return SetVar(keyword, variable, expr=parse_expr(text, line.context))


def _set_status(line: ActionLine) -> Action:
    text = line.next("a status code")
    if not text.isdigit() or not 100 <= int(text) <= 999:
        raise RuleError(f"'set-status': expects an HTTP status code between 100 and 999 "
                        f"(got '{text}')")
    reason = None
    if line.peek() == "reason":
        line.index += 1
        reason = line.next("a reason after 'reason'")
    return SetStatus(int(text), reason)


def _capture(line: ActionLine) -> Action:
    expr = parse_expr(line.next("a sample expression"), line.context)
    how = line.next("'len' or 'id'")
    value = line.next(f"a number after '{how}'")
    if how not in ("len", "id") or not value.isdigit():
        raise RuleError("'capture': expects <expression> 'len' <length> or 'id' <idx>")
    slots = line.capture_slots if line.capture_slots is not None else []
    if how == "len":
        slots.append(CaptureSlot(None, int(value)))
        return Capture(expr, len(slots) - 1, int(value))
    slot = int(value)
    if slot >= len(slots):
        raise RuleError(f"'capture': no capture slot with id {slot} (declare it with "
                        "'declare capture request len N')")
    return Capture(expr, slot, slots[slot].length)


def _simple(line: ActionLine) -> Action:
    return Simple(line.name)


def _log_level(line: ActionLine) -> Action:
    level = line.next("a log level")
    levels = ("silent", "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
    if level not in levels:
        raise RuleError(f"'set-log-level': unknown level '{level}'")
    return Simple(f"set-log-level {level}")


_ALL: Final = frozenset({REQUEST, RESPONSE, AFTER})
_REQ: Final = frozenset({REQUEST})
_RES: Final = frozenset({RESPONSE, AFTER})
D = ActionDef
ACTIONS: Final[dict[str, ActionDef]] = {
    "set-header": D(_header, header_step, _ALL),
    "add-header": D(_header, header_step, _ALL),
    "del-header": D(_header, header_step, _ALL),
    "replace-header": D(_header, header_step, _ALL),
    "replace-value": D(_header, header_step, _ALL),
    "set-path": D(_target, target_step, _REQ),
    "set-pathq": D(_target, target_step, _REQ),
    "set-query": D(_target, target_step, _REQ),
    "set-uri": D(_target, target_step, _REQ),
    "set-method": D(_target, target_step, _REQ),
    "replace-path": D(_target, target_step, _REQ),
    "replace-pathq": D(_target, target_step, _REQ),
    "replace-uri": D(_target, target_step, _REQ),
    "redirect": D(_redirect, redirect_step, frozenset({REQUEST, RESPONSE})),
    "deny": D(_deny, answer_step, frozenset({REQUEST, RESPONSE})),
    "return": D(_return, answer_step, frozenset({REQUEST, RESPONSE})),
    "allow": D(_simple, simple_step, _ALL),
    "auth": D(_auth, answer_step, _REQ),
    "use-service": D(_use_service, answer_step, _REQ),
    "set-var": D(_set_var, set_var_step, _ALL),
    "set-var-fmt": D(_set_var, set_var_step, _ALL),
    "unset-var": D(_set_var, set_var_step, _ALL),
    "set-status": D(_set_status, set_status_step, _RES),
    "capture": D(_capture, capture_step, _REQ),
    "set-log-level": D(_log_level, simple_step, _ALL),
}

_COUNTERS = "stick counters (track-sc, sc_*, src_*) are not supported by geoproxy yet"
# Actions HAProxy has that geoproxy refuses, with the reason (rule 4).
REFUSED: Final[dict[str, str]] = {
    **dict.fromkeys(("track-sc0", "track-sc1", "track-sc2", "sc-inc-gpc", "sc-inc-gpc0",
                     "sc-inc-gpc1", "sc-set-gpt", "sc-set-gpt0", "sc-add-gpc"), _COUNTERS),
    "tarpit": "geoproxy does not hold connections in a tarpit",
    "silent-drop": "geoproxy does not drop client connections silently",
    "reject": "geoproxy does not close client connections without an answer",
    "early-hint": "geoproxy sends no 103 Early Hints",
    "send-spoe-group": "geoproxy has no SPOE filters",
    "cache-use": "geoproxy has no cache", "cache-store": "geoproxy has no cache",
    "do-resolve": "geoproxy resolves no names at run time",
    "normalize-uri": "geoproxy does not normalize URIs",
    "set-src": "geoproxy does not rewrite the client's address",
    "set-src-port": "geoproxy does not rewrite the client's address",
    "set-dst": "geoproxy does not rewrite the destination address",
    "set-dst-port": "geoproxy does not rewrite the destination address",
    "set-map": "geoproxy does not change maps at run time",
    "del-map": "geoproxy does not change maps at run time",
    "add-acl": "geoproxy does not change ACLs at run time",
    "del-acl": "geoproxy does not change ACLs at run time",
    "wait-for-body": "geoproxy streams request bodies and never waits for them",
    "wait-for-handshake": "geoproxy does not terminate TLS",
    "strict-mode": "geoproxy does not implement 'strict-mode'",
    "set-timeout": "geoproxy does not change timeouts per request",
    "set-priority-class": "geoproxy's queues do not have priorities",
    "set-priority-offset": "geoproxy's queues do not have priorities",
    "disable-l7-retry": "geoproxy does not implement 'retry-on'",
    "set-nice": "geoproxy does not schedule requests by priority",
    "set-tos": "geoproxy does not set IP TOS", "set-mark": "geoproxy does not set packet marks",
    "set-bandwidth-limit": "geoproxy has no bandwidth limits",
    "send-spoe": "geoproxy has no SPOE filters",
}


def action_name(word: str) -> str:
    """The table key of an action as written: ``set-var(txn.x)`` -> ``set-var``."""
    return word.partition("(")[0]


def refused_reason(name: str) -> str | None:
    if name in REFUSED:
        return REFUSED[name]
    if name.startswith("lua."):
        return "geoproxy does not run Lua"
    return None
