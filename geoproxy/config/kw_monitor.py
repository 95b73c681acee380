"""``monitor-uri URI`` and ``monitor fail if|unless COND``: the proxy answers a health probe
itself (HAProxy's manual, ``monitor-uri`` and ``monitor fail``).

Rules:
1. ``monitor-uri`` belongs to frontends (and defaults); a ``defaults`` value is inherited.
2. ``monitor fail`` needs ``if`` or ``unless`` and a condition; several lines: the probe fails
   when any of them holds. It is never inherited, and refused in ``defaults``.
"""

from __future__ import annotations

from geoproxy.config.acl import AclError
from geoproxy.config.context import Line
from geoproxy.config.draft import ProxyDraft, ProxyKind
from geoproxy.config.kw_proxy import condition


def parse_monitor_uri(proxy: ProxyDraft, line: Line) -> None:
    uri = line.arg(0)
    if not uri:
        line.fail("'monitor-uri' expects an URI.")
    line.at_most(1)
    proxy.settings.monitor_uri = uri


def parse_monitor(proxy: ProxyDraft, line: Line) -> None:
    if line.arg(0) != "fail":
        line.fail("'monitor' expects 'fail'.")
    if proxy.kind is ProxyKind.DEFAULTS:
        line.fail("'monitor fail' not allowed in 'defaults' section.")
    if line.arg(1) not in ("if", "unless"):
        line.fail("'monitor fail' requires either 'if' or 'unless' followed by a condition.")
    try:
        rule = condition(proxy, line, 1)
    except AclError as exc:
        line.fail(f"error detected while parsing a 'monitor fail' condition : {exc}.")
    proxy.rules.monitor_fail.append(rule)
