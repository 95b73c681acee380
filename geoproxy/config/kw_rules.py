"""HTTP rule keywords: ``http-request``, ``http-response``, ``http-after-response``,
``redirect``, ``capture``, ``declare capture``, ``log-format``, ``use_backend``.

Each parser takes the section draft and one ``Line``; see ``context.py`` for the contract. The
actions, fetches and formats themselves are ``geoproxy.rules``'s tables; this module only
places them in the section and words their errors as HAProxy 2.6 does ("error detected in
frontend 'web' while parsing 'http-request set-header' rule : ...").
"""

from __future__ import annotations

from geoproxy.config.acl import AclError
from geoproxy.config.context import Line
from geoproxy.config.draft import HttpRuleDraft, ProxyDraft, ProxyKind, UseBackendDraft
from geoproxy.config.kw_proxy import condition
from geoproxy.rules.actions import (
    ACTIONS,
    AFTER,
    REQUEST,
    RESPONSE,
    ActionLine,
    action_name,
    parse_redirect,
    refused_reason,
)
from geoproxy.rules.calls import RuleError
from geoproxy.rules.logformat import parse_logformat
from geoproxy.rules.spec import CaptureSlot

_SIDES = {"http-request": REQUEST, "http-response": RESPONSE, "http-after-response": AFTER}


def _rules_of(proxy: ProxyDraft, side: str) -> list[HttpRuleDraft]:
    rules = proxy.rules
    return {REQUEST: rules.http_request, RESPONSE: rules.http_response,
            AFTER: rules.http_after_response}[side]


def _no_rules_in_defaults(proxy: ProxyDraft, line: Line) -> None:
    if proxy.kind is ProxyKind.DEFAULTS:
        if not proxy.name:
            line.fail(f"'{line.keyword}' not allowed in anonymous 'defaults' section.")
        line.fail(f"'{line.keyword}' in a 'defaults' section is not supported by geoproxy; "
                  "write the rule in each frontend or backend.")


def parse_http_rule(proxy: ProxyDraft, line: Line) -> None:
    """``http-request|http-response|http-after-response ACTION [ARGS] [if|unless COND]``."""
    _no_rules_in_defaults(proxy, line)
    side = _SIDES[line.keyword]
    word = line.arg(0)
    if not word:
        line.fail(f"'{line.keyword}' expects an action.")
    name = action_name(word)
    definition = ACTIONS.get(name)
    if definition is None or side not in definition.sides:
        reason = refused_reason(name)
        if reason is not None:
            line.fail(f"'{line.keyword} {name}' is not supported by geoproxy: {reason}.")
        valid = [n for n, d in ACTIONS.items() if side in d.sides]
        line.fail(f"'{line.keyword}' expects {', '.join(valid)} (got '{word}').")
    context = line.rules_context(response=side != REQUEST)
    parsed = ActionLine(word, line.args[1:], context, side,
                        capture_slots=proxy.rules.request_captures)
    if name == "capture" and not proxy.kind.has_frontend:
        line.fail(f"'{line.keyword} capture' : proxy '{proxy.name}' has no frontend "
                  "capability.")
    where = f"{proxy.label} while parsing '{line.keyword} {name}' rule"
    try:
        action = definition.parse(parsed)
    except RuleError as exc:
        line.fail(f"error detected in {where} : {exc}.")
    if side == REQUEST and any(r.keyword == "redirect" for r in proxy.rules.http_request):
        line.warn("a 'http-request' rule placed after a 'redirect' rule will still be "
                  "processed before.")
    _append(proxy, line, side, action, 1 + parsed.index, where)


def _append(proxy: ProxyDraft, line: Line, side: str, action: object, start: int,
            where: str) -> None:
    cond = None
    rest = line.arg(start)
    if rest in ("if", "unless"):
        try:
            cond = condition(proxy, line, start)
        except AclError as exc:
            line.fail(f"error detected in {where} : {exc}.")
    elif rest:
        line.fail(f"error detected in {where} : unexpected keyword '{rest}' (expects 'if' "
                  "or 'unless' followed by a condition).")
    keyword = f"{line.keyword} {line.arg(0)}" if line.keyword != "redirect" else "redirect"
    _rules_of(proxy, side).append(
        HttpRuleDraft(action, cond, line.location, keyword))  # type: ignore[arg-type]


def parse_redirect_keyword(proxy: ProxyDraft, line: Line) -> None:
    """``redirect location|prefix|scheme TARGET [code N] [OPTIONS] [if|unless COND]``: an
    ``http-request redirect`` evaluated after the ``http-request`` rules, as in HAProxy."""
    _no_rules_in_defaults(proxy, line)
    parsed = ActionLine("redirect", line.args, line.rules_context(), REQUEST)
    where = f"{proxy.label} while parsing redirect rule"
    try:
        action = parse_redirect(parsed)
    except RuleError as exc:
        line.fail(f"error detected in {where} : {exc}.")
    _append(proxy, line, REQUEST, action, parsed.index, where)


def parse_capture(proxy: ProxyDraft, line: Line) -> None:
    """``capture request|response header NAME len N``; ``capture cookie`` only feeds the log's
    cookie fields, which geoproxy leaves as ``-``: accepted with a warning."""
    if line.arg(0) == "cookie":
        line.warn("'capture cookie' is ignored by geoproxy (the log shows '-' for captured "
                  "cookies).")
        return
    if line.arg(0) not in ("request", "response") or line.arg(1) != "header" \
            or line.arg(3) != "len" or not line.arg(4).isdigit() or not line.arg(2):
        line.fail("'capture' expects 'cookie', 'request header' or 'response header' "
                  "followed by a name, 'len' and a length.")
    line.at_most(5)
    if not proxy.kind.has_frontend or proxy.kind is ProxyKind.DEFAULTS:
        line.warn(f"'capture' ignored because {proxy.label} has no frontend capability.")
        return
    slot = CaptureSlot(line.arg(2).lower(), int(line.arg(4)))
    target = proxy.rules.request_captures if line.arg(0) == "request" \
        else proxy.rules.response_captures
    target.append(slot)


def parse_declare(proxy: ProxyDraft, line: Line) -> None:
    """``declare capture request|response len N``: a slot for ``http-request capture ...
    id N`` rules."""
    if line.arg(0) != "capture" or line.arg(1) not in ("request", "response") \
            or line.arg(2) != "len" or not line.arg(3).isdigit():
        line.fail("'declare' expects 'capture request|response len <length>'.")
    line.at_most(4)
    slot = CaptureSlot(None, int(line.arg(3)))
    target = proxy.rules.request_captures if line.arg(1) == "request" \
        else proxy.rules.response_captures
    target.append(slot)


def parse_log_format(proxy: ProxyDraft, line: Line) -> None:
    """``log-format FORMAT``: the access log line of a frontend (inherited from defaults)."""
    if not line.args:
        line.fail("'log-format' expects a format string.")
    if len(line.args) > 1:
        line.fail("'log-format' expects only one argument, possibly quoted (got "
                  f"'{' '.join(line.args)}').")
    if proxy.kind is ProxyKind.BACKEND:
        line.warn("'log-format' ignored because backend has no frontend capability.")
        return
    try:
        # a log line is written once the response is over: request headers are gone
        proxy.settings.log_format = parse_logformat(line.arg(0),
                                                    line.rules_context(response=True))
    except RuleError as exc:
        line.fail(f"'log-format' : failed to parse log-format : {exc}.")


def parse_use_backend(proxy: ProxyDraft, line: Line) -> None:
    """``use_backend NAME [if|unless COND]``; a NAME holding ``%[`` or ``%`` variables is a
    log-format string resolved per request (an unknown result ends the switching rules, and
    the default backend is used, as in HAProxy)."""
    name = line.arg(0)
    if not name:
        line.fail("'use_backend' expects a backend name.")
    name_format = None
    if "%" in name:
        try:
            name_format = parse_logformat(name, line.rules_context())
        except RuleError as exc:
            line.fail(f"'use_backend' : failed to parse log-format '{name}' : {exc}.")
        if name_format.constant is not None:
            name, name_format = name_format.constant, None
    cond = None
    if line.arg(1):
        if line.arg(1) not in ("if", "unless"):
            line.fail(f"unexpected keyword '{line.arg(1)}' after switching rule, only 'if' "
                      "and 'unless' are allowed.")
        try:
            cond = condition(proxy, line, 1)
        except AclError as exc:
            line.fail(f"error detected while parsing switching rule : {exc}.")
    proxy.rules.use_backends.append(UseBackendDraft(name, cond, line.location, name_format))
