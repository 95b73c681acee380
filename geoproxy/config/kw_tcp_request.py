"""``tcp-request connection|content ACTION [if|unless COND]`` and ``tcp-request inspect-delay``.

Rules (manual section 4.2, ``tcp-request``; HAProxy 2.6's tcp_rules.c):
1. ``connection`` rules run when a connection is accepted, before any byte is read: they may
   only test the addresses (``src``, ``src_port``, ``dst_port``), and only frontends have them.
2. ``content`` rules run on the bytes received, again each time more arrive, until one decides
   or ``inspect-delay`` passes; frontends and backends have them, in HTTP proxies too.
3. Actions: ``accept``, ``reject``, ``silent-drop``. ``track-sc0|1|2`` needs fleet-wide stick
   counters, which geoproxy does not have yet: it is refused by name, as is every other action
   (``set-var``, ``capture``, ``lua.*``, ``use-service`` ...), rather than ignored.
4. HAProxy 2.6 refuses these rules in an anonymous ``defaults`` section; geoproxy also refuses
   them in a named one (HAProxy would prepend them to every proxy using it).
"""

from __future__ import annotations

from geoproxy.config.acl import AclError
from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ProxyDraft, ProxyKind, TcpRequestRuleDraft, TermDraft
from geoproxy.config.kw_proxy import condition
from geoproxy.config.model_tcp import TcpAction
from geoproxy.config.units import UnitError, parse_time

_ACTIONS = {action.value: action for action in TcpAction}
_TRACK = ("track-sc0", "track-sc1", "track-sc2")
# rule 1: what a connection rule may test (an anonymous ACL's criterion, or a named ACL's)
_LAYER4 = frozenset({"src", "src_port", "dst", "dst_port", "always_true", "always_false",
                     "env", "hostname", "date", "int", "str", "bool"})
_STICK_COUNTERS = ("fleet-wide stick counters (track-sc0/1/2, sc_*/src_* fetches) are not "
                   "built yet; geoproxy refuses the rule rather than count per process")


def parse_tcp_request(proxy: ProxyDraft, line: Line) -> None:
    kind = line.arg(0)
    if kind not in ("connection", "content", "inspect-delay", "session"):
        line.fail(f"'tcp-request' expects 'connection', 'session', 'content' or "
                  f"'inspect-delay' (got '{kind}').")
    if proxy.kind is ProxyKind.DEFAULTS:
        if not proxy.name:
            line.fail(f"tcp-request {kind} is not allowed in anonymous 'defaults' sections")
        line.fail(f"tcp-request {kind} in a 'defaults' section is not supported by geoproxy; "
                  "write the rule in each proxy.")
    if kind == "session":
        line.fail("'tcp-request session' is not supported by geoproxy (its actions need stick "
                  "counters or variables).")
    if kind == "inspect-delay":
        _inspect_delay(proxy, line)
        return
    if kind == "connection" and not proxy.kind.has_frontend:
        line.fail(f"tcp-request connection is not allowed because {proxy.label} is not a "
                  "frontend")
    rule = _rule(proxy, line, kind)
    if kind == "connection":
        if proxy.rules.tcp_content:
            line.warn("a 'tcp-request' rule placed after a 'tcp-request content' rule will "
                      "still be processed before.")
        proxy.rules.tcp_connection.append(rule)
    else:
        proxy.rules.tcp_content.append(rule)


def _inspect_delay(proxy: ProxyDraft, line: Line) -> None:
    value = line.arg(1)
    if not value:
        line.fail("'tcp-request inspect-delay' expects a timeout value.")
    line.at_most(2, "tcp-request inspect-delay")
    try:
        seconds = parse_time(value)
    except UnitError as exc:
        line.fail(exc.describe("tcp-request inspect-delay"))
    if proxy.rules.inspect_delay is not None:
        line.warn("'tcp-request inspect-delay' : the delay was already set; this one replaces "
                  "it.")
    proxy.rules.inspect_delay = seconds


def _rule(proxy: ProxyDraft, line: Line, kind: str) -> TcpRequestRuleDraft:
    shown = f"tcp-request {kind}"
    name = line.arg(1)
    if not name:
        line.fail(f"'{shown}' expects an action: {quoted_list(_ACTIONS, 'or')}.")
    if name in _TRACK or name.startswith(("sc-inc-gpc", "sc-set-gpt", "sc-add-gpc")):
        line.fail(f"'{shown} {name}' is not supported by geoproxy: {_STICK_COUNTERS}.")
    action = _ACTIONS.get(name)
    if action is None:
        line.fail(f"'{shown} {name}' is not supported by geoproxy (it supports "
                  f"{quoted_list(_ACTIONS, 'and')}).")
    cond = None
    if line.arg(2) in ("if", "unless"):
        try:
            cond = condition(proxy, line, 2)
        except AclError as exc:
            line.fail(f"'{shown} {name}' : error detected while parsing the condition : {exc}.")
        if kind == "connection":
            _only_layer4(proxy, line, cond.any_of, shown)
    elif line.arg(2):
        line.fail(f"'{shown} {name}' : unexpected keyword '{line.arg(2)}' (expects 'if' or "
                  "'unless').")
    return TcpRequestRuleDraft(action, line.location, cond)


def _only_layer4(proxy: ProxyDraft, line: Line, groups: tuple[tuple[TermDraft, ...], ...],
                 shown: str) -> None:
    """Rule 1: a connection rule that tests buffered content could never decide."""
    for group in groups:
        for term in group:
            tests = term.anonymous.tests if term.anonymous is not None else tuple(
                proxy.rules.acls.get(term.name, ()))
            for test in tests:
                name = test.expr.fetch.name
                if name not in _LAYER4:
                    line.fail(f"'{shown}' : fetch method '{name}' extracts information from the "
                              "request contents, none of which is available at connection "
                              "time.")
