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
from urllib.parse import unquote

from geoproxy.rules.expr import compile_expr
from geoproxy.rules.fetches import request_path
from geoproxy.rules.logformat import compile_logformat
from geoproxy.rules.outcome import (
    FORBIDDEN,
    REASONS,
    STOP,
    LocalReply,
    Outcome,
    Step,
    StepContext,
    failed_rewrite,
    reason_of,
)
from geoproxy.rules.run_headers import expand_groups, header_step
from geoproxy.rules.spec import (
    Answer,
    Capture,
    Redirect,
    Reply,
    SetStatus,
    SetVar,
    Simple,
    TargetAction,
)
from geoproxy.rules.txn import Txn
from geoproxy.rules.values import to_str

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
        if FORBIDDEN.search(value) or " " in value:
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
            value = expand_groups(value, match)
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
        if FORBIDDEN.search(location):
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
        if any(FORBIDDEN.search(value) for _, value in added):
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


__all__ = ["REASONS", "STOP", "LocalReply", "Outcome", "Step", "StepContext", "header_step",
           "reason_of", "request_path", "split_target"]
