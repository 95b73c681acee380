"""``option NAME [args]``, ``no option NAME`` and ``default option NAME``.

Rules (manual section 4.2, ``option ...``; HAProxy's cfgparse-listen.c):
1. Each supported option says which side it needs (frontend, backend, or both) and whether
   ``no``/``default`` may prefix it; on the wrong side it is ignored with HAProxy's warning.
2. ``no option X`` clears X; ``default option X`` restores HAProxy's default. For the
   connection modes (``http-keep-alive``, ``http-server-close``, ``httpclose``) ``no`` only
   cancels the mode if it is the current one, as in HAProxy.
3. ``option httplog`` and ``option dontlognull`` are recorded for the access log.
4. Options HAProxy has that do not change traffic are ignored with one warning; those that
   would are refused (``ignored.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from geoproxy.config.context import Line, suggestion
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.ignored import OPTION_IGNORED, OPTION_REFUSED
from geoproxy.config.kw_check import parse_option_httpchk
from geoproxy.config.kw_external_check import option_external_check
from geoproxy.config.kw_tcp_check import (
    option_ldap_check,
    option_mysql_check,
    option_pgsql_check,
    option_redis_check,
    option_smtpchk,
    option_ssl_hello_chk,
    option_tcp_check,
)
from geoproxy.config.model import ForwardFor, HttpMode, OriginalTo


@dataclass(frozen=True, slots=True)
class Option:
    parse: Callable[[ProxyDraft, Line], None]
    frontend: bool
    backend: bool
    negatable: bool


def parse_option(proxy: ProxyDraft, line: Line) -> None:
    name = line.arg(0)
    if not name:
        line.fail("'option' expects an option name.")
    option = OPTIONS.get(name)
    if option is None:
        _not_supported(line, name)
        return
    if line.prefix and not option.negatable:
        line.fail(f"negation/default is not supported for option '{name}'.")
    if name == "httplog" and not proxy.kind.has_frontend:
        line.warn(f"{proxy.label} : 'option httplog' directive is ignored in backends.")
        return
    side_ok = (option.frontend and proxy.kind.has_frontend) or \
        (option.backend and proxy.kind.has_backend)
    if not side_ok:
        missing = "frontend" if option.frontend else "backend"
        line.warn(f"'option {name}' ignored because {proxy.label} has no {missing} capability.")
        return
    option.parse(proxy, line)


def _not_supported(line: Line, name: str) -> None:
    if name in OPTION_IGNORED:
        line.warn(f"'option {name}' is ignored by geoproxy ({OPTION_IGNORED[name]}).")
        return
    if name in OPTION_REFUSED:
        line.fail(f"option '{name}' is not supported by geoproxy.")
    known = sorted(OPTIONS)
    line.fail(f"unknown option '{name}'{suggestion(name, [*known, *OPTION_IGNORED])} "
              f"(geoproxy supports: {', '.join(known)}).")


def _persist(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option persist")
    proxy.settings.persist = line.prefix == ""


def _allbackups(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option allbackups")
    proxy.settings.allbackups = line.prefix == ""


def _abortonclose(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option abortonclose")
    proxy.settings.abortonclose = line.prefix == ""


def _redispatch(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(2, "option redispatch")
    interval = line.arg(1)
    if line.prefix:
        proxy.settings.redispatch, proxy.settings.redispatch_interval = False, -1
        return
    if interval and not interval.lstrip("-").isdigit():
        line.fail(f"'option redispatch' expects an integer interval (got '{interval}').")
    proxy.settings.redispatch = True
    proxy.settings.redispatch_interval = int(interval) if interval and int(interval) else -1


def _http_mode(mode: HttpMode) -> Callable[[ProxyDraft, Line], None]:
    def parse(proxy: ProxyDraft, line: Line) -> None:
        line.at_most(1, f"option {line.arg(0)}")
        if not line.prefix:
            proxy.settings.http_mode = mode
        elif line.prefix == "default" or proxy.settings.http_mode is mode:
            proxy.settings.http_mode = HttpMode.KEEP_ALIVE
    return parse


def _httplog(proxy: ProxyDraft, line: Line) -> None:
    if line.arg(1) and line.arg(1) != "clf":
        line.fail("keyword 'httplog' only supports option 'clf'.")
    line.at_most(2, "option httplog")
    proxy.settings.httplog = True
    proxy.settings.tcplog = False  # the last log format named wins
    proxy.settings.httplog_location = line.location


def _tcplog(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option tcplog")
    proxy.settings.tcplog = True
    proxy.settings.httplog = False


def _dontlognull(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option dontlognull")
    proxy.settings.dontlognull = line.prefix == ""


def _forwardfor(proxy: ProxyDraft, line: Line) -> None:
    header, network, if_none = "X-Forwarded-For", None, False
    index = 1
    while index < len(line.args):
        word = line.args[index]
        if word == "except":
            network = _except_network(line, line.arg(index + 1))
            index += 1
        elif word == "header":
            header = line.arg(index + 1)
            if not header:
                line.fail("'option forwardfor header' expects <header_name> as argument.")
            index += 1
        elif word == "if-none":
            if_none = True
        else:
            line.fail("'option forwardfor' only supports optional values: 'except', 'header' "
                      "and 'if-none'.")
        index += 1
    proxy.settings.forwardfor = ForwardFor(header, network, if_none)


def _buffer_request(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option http-buffer-request")
    proxy.settings.buffer_request = line.prefix == ""


def _originalto(proxy: ProxyDraft, line: Line) -> None:
    header, network = "X-Original-To", None
    index = 1
    while index < len(line.args):
        word = line.args[index]
        if word == "except":
            network = _except_network(line, line.arg(index + 1), "originalto")
        elif word == "header":
            header = line.arg(index + 1)
            if not header:
                line.fail("'option originalto header' expects <header_name> as argument.")
        else:
            line.fail("'option originalto' only supports optional values: 'except' and "
                      "'header'.")
        index += 2
    proxy.settings.originalto = OriginalTo(header, network)


def _except_network(line: Line, text: str, option: str = "forwardfor") -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        line.fail(f"'option {option} except' expects <address>[/mask] as argument.")


OPTIONS: dict[str, Option] = {
    "redispatch": Option(_redispatch, frontend=False, backend=True, negatable=True),
    "persist": Option(_persist, frontend=False, backend=True, negatable=True),
    "allbackups": Option(_allbackups, frontend=False, backend=True, negatable=True),
    "abortonclose": Option(_abortonclose, frontend=False, backend=True, negatable=True),
    "forwardfor": Option(_forwardfor, frontend=True, backend=True, negatable=False),
    "httpchk": Option(parse_option_httpchk, frontend=False, backend=True, negatable=False),
    "http-keep-alive": Option(_http_mode(HttpMode.KEEP_ALIVE), True, True, negatable=True),
    "http-server-close": Option(_http_mode(HttpMode.SERVER_CLOSE), True, True, negatable=True),
    "httpclose": Option(_http_mode(HttpMode.CLOSE), True, True, negatable=True),
    "httplog": Option(_httplog, frontend=True, backend=False, negatable=False),
    "dontlognull": Option(_dontlognull, frontend=True, backend=False, negatable=True),
    "tcplog": Option(_tcplog, frontend=True, backend=False, negatable=False),
    "external-check": Option(option_external_check, frontend=False, backend=True,
                             negatable=False),
    "tcp-check": Option(option_tcp_check, frontend=False, backend=True, negatable=False),
    "redis-check": Option(option_redis_check, frontend=False, backend=True, negatable=False),
    "mysql-check": Option(option_mysql_check, frontend=False, backend=True, negatable=False),
    "pgsql-check": Option(option_pgsql_check, frontend=False, backend=True, negatable=False),
    "ldap-check": Option(option_ldap_check, frontend=False, backend=True, negatable=False),
    "smtpchk": Option(option_smtpchk, frontend=False, backend=True, negatable=False),
    "ssl-hello-chk": Option(option_ssl_hello_chk, frontend=False, backend=True,
                            negatable=False),
    "http-buffer-request": Option(_buffer_request, frontend=True, backend=True, negatable=True),
    "originalto": Option(_originalto, frontend=True, backend=True, negatable=False),
}
