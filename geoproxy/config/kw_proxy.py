"""Keywords common to proxy sections: mode, bind, routing, ACLs, timeouts, retries, errorfile,
force-persist and ignore-persist.

Each parser takes the section draft and one ``Line``; see ``context.py`` for the contract.
Messages are HAProxy 2.6's where HAProxy has one (checked with ``haproxy -c``).
"""

from __future__ import annotations

import dataclasses
import re

from geoproxy.config import address, kw_ssl
from geoproxy.config.acl import (
    NO_PATTERN_WARNING,
    AclError,
    ConditionScope,
    parse_condition,
    parse_test,
)
from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ConditionDraft, ProxyDraft, ProxyKind
from geoproxy.config.errorfile import ErrorFileError, read_errorfile
from geoproxy.config.kw_global import integer
from geoproxy.config.model import ErrorFile, ProxyMode
from geoproxy.config.model_tls import BindTls
from geoproxy.config.units import UnitError, parse_time

_NAME_CHARS = re.compile(r"[A-Za-z0-9_.:-]+")
_REFUSED_BIND_OPTIONS = frozenset({
    "accept-netscaler-cip", "interface", "namespace", "transparent",
    "maxconn", "uid", "gid", "mode", "user", "group", "level", "severity-output", "expose-fd",
    "label", "tcp-ut", "quic-force-retry", "shards", "idle-ping",
})
_IGNORED_BIND_OPTIONS = frozenset({"name", "id", "process", "thread", "defer-accept", "tfo",
                                   "nice", "backlog", "mss", "v4v6"})
_BIND_OPTION_ARITY = {"name": 1, "id": 1, "process": 1, "thread": 1, "nice": 1, "backlog": 1,
                      "mss": 1}
# timeout name -> (model field, needs the frontend side, needs the backend side)
_TIMEOUTS: dict[str, tuple[str, bool, bool]] = {
    "client": ("client", True, False), "server": ("server", False, True),
    "connect": ("connect", False, True), "check": ("check", False, True),
    "queue": ("queue", False, True), "http-keep-alive": ("http_keep_alive", True, True),
    "http-request": ("http_request", True, True), "tunnel": ("tunnel", False, True),
    "tarpit": ("tarpit", True, True),
    "client-fin": ("client_fin", True, False), "server-fin": ("server_fin", False, True),
}
_IGNORED_TIMEOUTS: tuple[str, ...] = ()
_TIMEOUT_ALIASES = {"contimeout": "connect", "clitimeout": "client", "srvtimeout": "server"}


def check_name(kind: str, name: str) -> str | None:
    """HAProxy's ``invalid_char()`` for section, ACL and server names: the message, or None."""
    bad = next((c for c in name if not _NAME_CHARS.fullmatch(c)), None)
    if bad is None:
        return None
    return f"character '{bad}' is not permitted in {kind} name '{name}'."


def condition(proxy: ProxyDraft, line: Line, start: int) -> ConditionDraft:
    """Parse the ``if|unless ...`` that begins at argument ``start``. Raises ``AclError``."""
    scope = ConditionScope(proxy.knows_acl, line.warn, line.rules_context())
    return parse_condition(line.args[start:], line.location, scope)


def parse_mode(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1)
    mode = line.arg(0)
    if mode not in ("http", "tcp"):
        line.fail(f"unknown proxy mode '{mode}' (geoproxy supports 'http' and 'tcp').")
    proxy.settings.mode = ProxyMode(mode)
    proxy.settings.mode_location = line.location


def parse_bind(proxy: ProxyDraft, line: Line) -> None:
    if not line.args:
        line.fail("'bind' expects [addr1]:port1[-end1]{,[addr]:port[-end]}... as arguments.")
    try:
        addresses = address.parse_bind(address.expand(line.arg(0), line.env))
    except address.AddressError as exc:
        line.fail(f"'bind' : {exc}")
    accept_proxy, tls, proto, v6only = _bind_options(proxy, line)
    proxy.rules.binds.extend(
        (host, port, line.location, accept_proxy, tls, proto, v6only)
        for host, port in addresses)


def _bind_options(proxy: ProxyDraft, line: Line) -> tuple[bool, BindTls | None, str, bool]:
    """Check the options after the address; returns whether ``accept-proxy`` is one, the
    bind's TLS (``kw_ssl.py``), if any, the ``proto`` named (only ``h2``: HTTP/2 with prior
    knowledge), if any, and whether ``v6only`` is one."""
    accept_proxy = False
    v6only = False
    tls = kw_ssl.BindTlsDraft()
    proto = ""
    index = 1
    while index < len(line.args):
        option = line.args[index]
        if option == "accept-proxy":
            accept_proxy = True
            index += 1
            continue
        if option == "v6only":
            v6only = True
            index += 1
            continue
        if option == "proto":
            proto = line.arg(index + 1)
            if proto != "h2":
                line.fail(f"'bind {line.arg(0)}' : 'proto' : geoproxy knows only 'h2' "
                          f"(HTTP/2 with prior knowledge){f', got {proto!r}' if proto else ''}.")
            index += 2
            continue
        if kw_ssl.is_tls_bind_option(option):
            index = kw_ssl.bind_option(tls, line, index)
            continue
        where = f"'bind {line.arg(0)}' in section '{proxy.kind.value}'"
        if option in _REFUSED_BIND_OPTIONS:
            line.fail(f"'bind {line.arg(0)}' : '{option}' is not supported by geoproxy.")
        if option not in _IGNORED_BIND_OPTIONS:
            line.fail(f"{where} : unknown keyword '{option}' (geoproxy accepts "
                      f"{quoted_list(sorted(_IGNORED_BIND_OPTIONS))}, and ignores them).")
        line.warn(f"'bind {line.arg(0)}' : '{option}' is ignored by geoproxy.")
        index += 1 + _BIND_OPTION_ARITY.get(option, 0)
    return accept_proxy, kw_ssl.finish_bind(tls, line), proto, v6only


def _backend_name(line: Line) -> str:
    name = line.arg(0)
    if not name:
        line.fail(f"'{line.keyword}' expects a backend name.")
    if "%[" in name:
        line.fail(f"'{line.keyword}' : backend names computed from samples ('{name}') are not "
                  "supported by geoproxy; name the backend.")
    return name


def parse_default_backend(proxy: ProxyDraft, line: Line) -> None:
    name = _backend_name(line)
    line.at_most(1)
    proxy.settings.default_backend = name
    proxy.settings.default_backend_location = line.location


def parse_acl(proxy: ProxyDraft, line: Line) -> None:
    name = line.arg(0)
    if proxy.name == "" and proxy.kind is ProxyKind.DEFAULTS:
        line.fail("'acl' not allowed in anonymous 'defaults' section.")
    if not name:
        line.fail("'acl' expects <aclname> <criterion> [flags] [operator] <value> ...")
    bad = check_name("acl", name)
    if bad:
        line.fail(bad)
    if name.lower() == "or":
        line.fail(f"acl name '{name}' will never match. 'or' is used to express a logical "
                  "disjunction within a condition.")
    try:
        parsed = parse_test(line.args[1:], line.rules_context())
    except AclError as exc:
        line.fail(f"error detected while parsing ACL '{name}' : {exc}.")
    if parsed.no_pattern:
        line.warn(f"acl '{name}' : {NO_PATTERN_WARNING}")
    proxy.rules.acls.setdefault(name, []).append(parsed.test)
    proxy.rules.acl_locations.setdefault(name, line.location)


def parse_maxconn(proxy: ProxyDraft, line: Line) -> None:
    proxy.settings.maxconn = integer(line, 0, "maxconn")
    line.at_most(1)


def parse_retries(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1)
    if not line.args:
        line.fail("'retries' expects an integer argument (dispatch counts for one).")
    proxy.settings.retries = integer(line, 0, "retries")


def parse_timeout(proxy: ProxyDraft, line: Line) -> None:
    name = line.arg(0)
    if name in _IGNORED_TIMEOUTS:
        line.warn(f"'timeout {name}' is ignored by geoproxy.")
        return
    if name not in _TIMEOUTS:
        names = [*_TIMEOUTS, *_IGNORED_TIMEOUTS]
        line.fail(f"'timeout' supports {quoted_list(names)} (got '{name}')")
    _set_timeout(proxy, line, name, line.arg(1), f"timeout {name}")
    if len(line.args) > 2:
        line.fail(f"'timeout {name}' : unexpected extra argument '{line.arg(2)}' after value "
                  f"'{line.arg(1)}'.")


def parse_timeout_alias(proxy: ProxyDraft, line: Line) -> None:
    """``contimeout``/``clitimeout``/``srvtimeout``: HAProxy 1.x names that HAProxy 2.1+
    refuses; geoproxy reads them, so that a 1.x configuration loads, and says so."""
    name = _TIMEOUT_ALIASES[line.keyword]
    line.at_most(1)
    _set_timeout(proxy, line, name, line.arg(0), line.keyword)
    line.warn(f"the '{line.keyword}' directive is not supported anymore since HAProxy 2.1 "
              f"(HAProxy 2.6 refuses this file); geoproxy reads it as 'timeout {name}'. "
              f"Use 'timeout {name}'.")


def _set_timeout(proxy: ProxyDraft, line: Line, name: str, value: str, shown: str) -> None:
    field_name, frontend, backend = _TIMEOUTS[name]
    if not value:
        line.fail(f"'{shown}' expects an integer value (in milliseconds)")
    try:
        seconds = parse_time(value)
    except UnitError as exc:
        line.fail(exc.describe(shown))
    side = (frontend and proxy.kind.has_frontend) or (backend and proxy.kind.has_backend)
    if not side:
        missing = "frontend" if frontend else "backend"
        line.warn(f"'{shown}' will be ignored because {proxy.label} has no {missing} "
                  "capability")
        return
    timeouts = proxy.settings.timeouts
    proxy.settings.timeouts = dataclasses.replace(timeouts, **{field_name: seconds or None})


def parse_errorfile(proxy: ProxyDraft, line: Line) -> None:
    proxy.settings.errorfiles.append(errorfile_page(line))


def errorfile_page(line: Line) -> ErrorFile:
    """The page of an ``errorfile CODE FILE`` line, in a proxy or an ``http-errors``
    section."""
    if len(line.args) < 2:
        line.fail("errorfile : expects <status_code> and <file> as arguments.")
    line.at_most(2)
    code = line.arg(0)
    if not code.isdigit():
        line.fail(f"errorfile : status code '{code}' not handled.")
    try:
        page = read_errorfile(int(code), line.arg(1), line.config_dir, line.location)
    except ErrorFileError as exc:
        line.fail(str(exc))
    if page.response_status != page.status and not page.is_empty:
        line.warn(f"errorfile : '{page.path}' answers {page.response_status} for status "
                  f"{page.status}; geoproxy sends the file as it is, as HAProxy does.")
    return page


def parse_persist_rule(proxy: ProxyDraft, line: Line) -> None:
    if line.arg(0) not in ("if", "unless"):
        line.fail(f"'{line.keyword}' requires either 'if' or 'unless' followed by a condition.")
    try:
        cond = condition(proxy, line, 0)
    except AclError as exc:
        line.fail(f"error detected while parsing a '{line.keyword}' rule : {exc}.")
    rules = proxy.rules.force_persist if line.keyword == "force-persist" else \
        proxy.rules.ignore_persist
    rules.append(cond)
