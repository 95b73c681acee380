"""What each action does, compiled once from its spec into a step over a ``Txn`` (pure).

Rules (configuration manual 4.2; HAProxy 2.6's ``http_act.c``, ``http_ana.c``):
1. A step returns None (go on with the next rule), ``STOP`` (``allow``: no more rules of this
   list) or a ``LocalReply`` (the rule answers the client: ``deny``, ``return``, ``redirect``,
   ``auth``, ``use-service``; a failed rewrite answers 500, HAProxy's ``strict-mode``).
2. Header actions change the request's environ in request rules and the response's header
   list in response rules. ``set-header`` removes every occurrence, then adds the value last;
   ``add-header`` adds a value (to the joined line, in the request); ``replace-header``
   replaces each whole value that matches with the replacement (``\\1`` refers to the
   regex's groups), ``replace-value`` does so for each comma-separated value.
3. A value holding CR, LF or NUL is never written into a header (DESIGN.md invariant 7): the
   rewrite fails.
4. Target actions rewrite ``RAW_URI`` (and ``PATH_INFO``/``QUERY_STRING``, ``REQUEST_METHOD``)
   keeping what they do not name: ``set-path`` keeps the query, ``set-query`` the path, an
   absolute-form target keeps its scheme and authority.
5. Redirects build ``Location`` as HAProxy does: ``location`` as given; ``prefix`` followed by
   the path (and query, unless ``drop-query``; a prefix of ``/`` adds nothing); ``scheme``
   followed by ``://``, the Host header and the path; ``append-slash`` ends the location
   with ``/`` (``prefix`` and ``scheme``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from geoproxy.httptext import header_values
from geoproxy.rules.expr import compile_expr
from geoproxy.rules.fetches import CompileEnv, request_path
from geoproxy.rules.logformat import Render, compile_logformat
from geoproxy.rules.spec import (
    Answer,
    Capture,
    HeaderAction,
    Redirect,
    Reply,
    SetStatus,
    SetVar,
    Simple,
    TargetAction,
)
from geoproxy.rules.txn import Txn, environ_key
from geoproxy.rules.values import to_str

_FORBIDDEN: Final = re.compile(r"[\r\n\x00]")
REASONS: Final = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted",
    203: "Non-Authoritative Information", 204: "No Content", 205: "Reset Content",
    206: "Partial Content", 300: "Multiple Choices", 301: "Moved Permanently", 302: "Found",
    303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Payload Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
    416: "Range Not Satisfiable", 417: "Expectation Failed", 418: "I'm a teapot",
    421: "Misdirected Request", 422: "Unprocessable Content", 425: "Too Early",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def reason_of(status: int) -> str:
    return REASONS.get(status, "Other")


class _Stop:
    """``allow``: the rest of this rule list is skipped."""

    def __repr__(self) -> str:
        return "STOP"


STOP: Final = _Stop()


@dataclass(slots=True)
class LocalReply:
    """An answer a rule makes (rule 1). ``error_page`` asks for the proxy's page for
    ``status`` (its errorfile, else HAProxy's built-in page) with ``headers`` added;
    ``raw`` is a whole response (an ``errorfile`` argument); ``service`` names an applet
    (``prometheus-exporter``); ``termination`` is the log's first two state letters."""

    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error_page: bool = False
    raw: bytes | None = None
    service: str | None = None
    termination: str = "LR"


Outcome = LocalReply | _Stop | None
Step = Callable[[Txn], Outcome]


@dataclass(frozen=True, slots=True)
class StepContext:
    """What compiling a step needs: the configuration-wide ``CompileEnv``, the proxy the rule
    belongs to (``auth``'s default realm) and whether it runs on the response."""

    env: CompileEnv
    proxy: str
    response: bool


def failed_rewrite() -> LocalReply:
    """HAProxy's answer to a rewrite that cannot be done (``strict-mode``, on by default)."""
    return LocalReply(500, error_page=True, termination="PR")


# -- headers (rules 2 and 3) --------------------------------------------------------------


def header_step(action: HeaderAction, context: StepContext) -> Step:
    render = compile_logformat(action.value, context.env) if action.value else None
    if context.response:
        return _response_header_step(action, render)
    return _request_header_step(action, render)


def _checked(render: Render, constant: str | None) -> Callable[[Txn], str | None]:
    if constant is not None:
        return lambda txn: constant

    def value(txn: Txn) -> str | None:
        text = render(txn)
        return None if "\n" in text or "\r" in text or "\0" in text else text

    return value


def _request_header_step(action: HeaderAction, render: Render | None) -> Step:
    key = environ_key(action.name)
    kind = action.keyword
    if kind in ("set-header", "add-header"):
        assert render is not None and action.value is not None
        value_of = _checked(render, action.value.constant)
        joiner = "; " if key == "HTTP_COOKIE" else ", "
        if kind == "set-header":
            def set_header(txn: Txn) -> Outcome:
                value = value_of(txn)
                if value is None:
                    return failed_rewrite()
                environ = txn.environ
                environ.pop(key, None)
                environ[key] = value
                return None

            return set_header

        def add_header(txn: Txn) -> Outcome:
            value = value_of(txn)
            if value is None:
                return failed_rewrite()
            environ = txn.environ
            old = environ.pop(key, None)
            environ[key] = value if old is None else old + joiner + value
            return None

        return add_header
    if kind == "del-header":
        if action.method == "str":
            return lambda txn: txn.environ.pop(key, None) and None
        matches = _name_matcher(action)

        def delete(txn: Txn) -> Outcome:
            environ = txn.environ
            for name in [k for k in environ if _is_header_key(k) and matches(_name(k))]:
                del environ[name]
            return None

        return delete
    assert render is not None and action.regex is not None
    replace = _replacer(re.compile(action.regex), render, kind == "replace-value")

    def replace_step(txn: Txn) -> Outcome:
        environ = txn.environ
        old = environ.get(key)
        if old is None:
            return None
        new = replace(old, txn)
        if new is None:
            return failed_rewrite()
        environ[key] = new
        return None

    return replace_step


def _is_header_key(key: str) -> bool:
    return key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")


def _name(key: str) -> str:
    return (key[5:] if key.startswith("HTTP_") else key).lower().replace("_", "-")


def _name_matcher(action: HeaderAction) -> Callable[[str], bool]:
    name = action.name.lower()
    method = action.method
    if method == "beg":
        return lambda header: header.startswith(name)
    if method == "end":
        return lambda header: header.endswith(name)
    if method == "sub":
        return lambda header: name in header
    if method == "reg":
        regex = re.compile(action.name, re.IGNORECASE)
        return lambda header: regex.search(header) is not None
    return lambda header: header == name


def _replacer(regex: re.Pattern[str], render: Render,
              per_value: bool) -> Callable[[str, Txn], str | None]:
    """Rule 2's ``replace-header``/``replace-value`` on one header value."""

    def one(value: str, replacement: str) -> str:
        match = regex.search(value)
        if match is None:
            return value
        return _expand(replacement, match)

    def replace(value: str, txn: Txn) -> str | None:
        replacement = render(txn)
        if per_value:
            # HAProxy rewrites a value in place, the blanks before it included: a replaced
            # value after a comma loses its space ("a1, a2" -> "b1,b2")
            parts = []
            for index, part in enumerate(header_values(value)):
                replaced = one(part, replacement)
                if index:
                    parts.append("," if replaced != part else ", ")
                parts.append(replaced)
            new = "".join(parts)
        else:
            new = one(value, replacement)
        return None if _FORBIDDEN.search(new) else new

    return replace


def _expand(replacement: str, match: re.Match[str]) -> str:
    """HAProxy's ``exp_replace``: ``\\N`` is group N of the match (empty when it did not
    take part), other characters are copied."""
    parts = re.split(r"\\(\d)", replacement)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            number = int(part)
            out.append((match.group(number) or "") if number <= (match.re.groups or 0) else "")
        else:
            out.append(part)
    return "".join(out)


def _response_header_step(action: HeaderAction, render: Render | None) -> Step:
    name = action.name.lower()
    kind = action.keyword
    if kind in ("set-header", "add-header"):
        assert render is not None and action.value is not None
        value_of = _checked(render, action.value.constant)
        written = action.name
        replace_all = kind == "set-header"

        def write(txn: Txn) -> Outcome:
            value = value_of(txn)
            if value is None:
                return failed_rewrite()
            headers = txn.headers
            if replace_all:
                headers[:] = [h for h in headers if h[0].lower() != name]
            headers.append((written, value))
            return None

        return write
    if kind == "del-header":
        matches = _name_matcher(action)

        def delete(txn: Txn) -> Outcome:
            txn.headers[:] = [h for h in txn.headers if not matches(h[0].lower())]
            return None

        return delete
    assert render is not None and action.regex is not None
    replace = _replacer(re.compile(action.regex), render, kind == "replace-value")

    def replace_step(txn: Txn) -> Outcome:
        headers = txn.headers
        for index, (header, value) in enumerate(headers):
            if header.lower() == name:
                new = replace(value, txn)
                if new is None:
                    return failed_rewrite()
                headers[index] = (header, new)
        return None

    return replace_step


# -- the request target (rule 4) ------------------------------------------------------------


def split_target(uri: str) -> tuple[str, str, str | None]:
    """(scheme and authority of an absolute-form target or "", path, query or None)."""
    authority = ""
    if not uri.startswith("/") and "://" in uri:
        scheme_end = uri.find("://") + 3
        slash = uri.find("/", scheme_end)
        mark = uri.find("?", scheme_end)
        cut = min(i for i in (slash, mark, len(uri)) if i >= 0)
        authority, uri = uri[:cut], uri[cut:]
    path, question, query = uri.partition("?")
    return authority, path, query if question else None


def set_target(txn: Txn, uri: str) -> None:
    """Store a new request target in the environ (``RAW_URI``, ``PATH_INFO``,
    ``QUERY_STRING``)."""
    environ = txn.environ
    environ["RAW_URI"] = uri
    _, path, query = split_target(uri)
    environ["PATH_INFO"] = unquote(path, "latin-1") if "%" in path else path
    environ["QUERY_STRING"] = query or ""


def target_step(action: TargetAction, context: StepContext) -> Step:
    render = compile_logformat(action.value, context.env)
    kind = action.keyword
    regex = re.compile(action.regex) if action.regex else None

    def rewrite(txn: Txn) -> Outcome:
        value = render(txn)
        if _FORBIDDEN.search(value) or " " in value:
            return failed_rewrite()
        if kind == "set-method":
            if not value:
                return failed_rewrite()
            txn.environ["REQUEST_METHOD"] = value
            return None
        uri: str = txn.environ.get("RAW_URI") or "/"
        authority, path, query = split_target(uri)
        tail = "" if query is None else "?" + query
        if regex is not None:
            subject = uri if kind == "replace-uri" else (
                path + tail if kind == "replace-pathq" else path)
            match = regex.search(subject)
            if match is None:
                return None
            value = _expand(value, match)
            kind_done = {"replace-uri": "set-uri", "replace-pathq": "set-pathq",
                         "replace-path": "set-path"}[kind]
        else:
            kind_done = kind
        if kind_done == "set-uri":
            new = value
        elif kind_done == "set-path":
            new = authority + (value or "/") + tail
        elif kind_done == "set-pathq":
            new = authority + (value or "/")
        else:  # set-query
            if query is None and not value:
                return None
            new = authority + path + "?" + value
        set_target(txn, new)
        return None

    return rewrite


# -- answers (rule 5) ------------------------------------------------------------------------


def redirect_step(action: Redirect, context: StepContext) -> Step:
    render = compile_logformat(action.target, context.env)
    cookie = None
    if action.set_cookie is not None:
        cookie = action.set_cookie + "; path=/;"
    elif action.clear_cookie is not None:
        cookie = action.clear_cookie + "; path=/; Max-Age=0;"
    code = action.code

    def redirect(txn: Txn) -> Outcome:
        target = render(txn)
        if action.kind == "location":
            location = target
        else:
            uri: str = txn.environ.get("RAW_URI") or "/"
            _, path, query = split_target(uri)
            if not uri.startswith("/") and "://" not in uri:
                path, query = "/", None
            tail = path if action.drop_query or query is None else f"{path}?{query}"
            if action.kind == "prefix":
                location = (target if target != "/" else "") + tail
            else:
                host = txn.environ.get("HTTP_HOST", "")
                location = f"{target}://{host}{tail}"
            if action.append_slash and not location.endswith("/"):
                location += "/"
        if _FORBIDDEN.search(location):
            return failed_rewrite()
        headers = [("content-length", "0"), ("location", location)]
        if cookie is not None:
            headers.append(("set-cookie", cookie))
        if code in (302, 303, 307):
            headers.append(("cache-control", "no-cache"))
        return LocalReply(code, reason_of(code), headers, termination="LR")

    return redirect


def _reply_step(reply: Reply, context: StepContext, termination: str) -> Step:
    headers = tuple((h.name, compile_logformat(h.value, context.env)) for h in reply.headers)
    body_format = compile_logformat(reply.body_format, context.env) if reply.body_format \
        else None
    status, content_type = reply.status, reply.content_type
    reason = reason_of(status)

    def answer(txn: Txn) -> Outcome:
        added = [(name, render(txn)) for name, render in headers]
        if any(_FORBIDDEN.search(value) for _, value in added):
            return failed_rewrite()
        if reply.raw is not None:
            return LocalReply(status, reason, added, raw=reply.raw, termination=termination)
        if reply.errorfile:
            return LocalReply(status, reason, added, error_page=True, termination=termination)
        body = reply.body or b""
        if body_format is not None:
            body = body_format(txn).encode("utf-8", "surrogateescape")
        if body or content_type is not None:
            added.append(("content-length", str(len(body))))
        else:
            added.append(("content-length", "0"))
        if content_type is not None:
            added.append(("content-type", content_type))
        return LocalReply(status, reason, added, body, termination=termination)

    return answer


def answer_step(action: Answer, context: StepContext) -> Step:
    if action.keyword == "use-service":
        service = action.service
        return lambda txn: LocalReply(200, reason_of(200), service=service)
    if action.keyword == "auth":
        realm = (action.realm or context.proxy).replace('"', "")
        header = ("www-authenticate", f'Basic realm="{realm}"')
        return lambda txn: LocalReply(401, reason_of(401), [header], error_page=True,
                                      termination="PR")
    assert action.reply is not None
    termination = "PR" if action.keyword == "deny" else "LR"
    return _reply_step(action.reply, context, termination)


# -- variables, status, captures, allow ------------------------------------------------------


def set_var_step(action: SetVar, context: StepContext) -> Step:
    name = action.variable
    if action.keyword == "unset-var":
        def unset(txn: Txn) -> Outcome:
            txn.unset_var(name)
            return None

        return unset
    if action.value is not None:
        render = compile_logformat(action.value, context.env)

        def set_format(txn: Txn) -> Outcome:
            txn.set_var(name, render(txn))
            return None

        return set_format
    assert action.expr is not None
    evaluate = compile_expr(action.expr, context.env)

    def set_var(txn: Txn) -> Outcome:
        value = evaluate(txn)
        if value is not None:
            txn.set_var(name, value)
        return None

    return set_var


def set_status_step(action: SetStatus, context: StepContext) -> Step:
    status = action.status
    reason = action.reason if action.reason is not None else reason_of(status)

    def set_status(txn: Txn) -> Outcome:
        txn.status, txn.reason = status, reason
        return None

    return set_status


def capture_step(action: Capture, context: StepContext) -> Step:
    evaluate = compile_expr(action.expr, context.env)
    slot, length = action.slot, action.length

    def capture(txn: Txn) -> Outcome:
        value = to_str(evaluate(txn))
        slots = txn.captures
        if value is not None and slots is not None and slot < len(slots):
            slots[slot] = value[:length]
        return None

    return capture


def simple_step(action: Simple, context: StepContext) -> Step:
    if action.keyword == "allow":
        return lambda txn: STOP
    if action.keyword == "set-log-level silent":
        def silence(txn: Txn) -> Outcome:
            txn.environ["geoproxy.silent"] = True
            return None

        return silence
    return lambda txn: None  # other log levels: geoproxy logs every request at one level


__all__ = ["STOP", "LocalReply", "Outcome", "Step", "StepContext", "reason_of",
           "request_path", "split_target"]
