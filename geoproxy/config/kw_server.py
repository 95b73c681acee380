"""``server NAME ADDR:PORT [params]`` and ``default-server [params]``: HAProxy's ``srv_kws``.

Rules (manual section 5.2; HAProxy's server.c):
1. A ``server`` starts from a copy of the section's ``default-server`` as it is on that line
   (later ``default-server`` lines do not change earlier servers), which itself starts from the
   ``defaults`` section's.
2. ``SERVER_PARAMS`` maps each parameter to its number of arguments and the function that
   applies it to a ``Server`` value; the same table serves ``default-server``.
3. Server names are unique per backend; the address is kept as written (see ``address.py``),
   its environment variables expanded even outside quotes, as HAProxy does.
4. Parameters HAProxy has but geoproxy does not implement are refused by name; a few that do
   not change traffic are ignored with a warning; the ``no-`` forms of refused features are
   accepted silently, since geoproxy already behaves that way.
5. ``server-template PREFIX NUM|FIRST-LAST FQDN[:PORT] [params]`` declares the servers
   PREFIX<FIRST>..PREFIX<LAST> (FIRST is 1 with a bare NUM), all with that address and those
   parameters, as HAProxy does; with ``resolvers``, each slot gets its own address of the
   FQDN at run time (``geoproxy.resolve``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from geoproxy.config import address
from geoproxy.config.context import Line, quoted_list, suggestion
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.kw_proxy import check_name
from geoproxy.config.kw_resolve import (
    ResolveParamError,
    apply_init_addr,
    apply_resolve_net,
    apply_resolve_opts,
    apply_resolve_prefer,
    apply_resolvers,
    is_srv_record,
)
from geoproxy.config.kw_ssl_server import (
    SERVER_TLS_PARAMS,
    finish_server,
    is_server_tls_param,
    server_param,
)
from geoproxy.config.model import Observe, OnError, Server
from geoproxy.config.model_tcp import ProxyProtocol
from geoproxy.config.units import UnitError, parse_time


class ParamError(Exception):
    """A server parameter HAProxy or geoproxy refuses; the message omits the server prefix."""


@dataclass(frozen=True, slots=True)
class Param:
    arity: int
    apply: Callable[[Server, str, str], Server]  # (server, parameter name, value) -> server


Apply = Callable[[Server, str, str], Server]
replace = dataclasses.replace


def _flag(change: Callable[[Server], Server]) -> Apply:
    return lambda server, _name, _value: change(server)


def _who(server: Server) -> str:
    return f"server {server.name}" if server.name else "default-server"


def _integer(name: str, value: str, minimum: int, maximum: int | None = None) -> int:
    if not value.isdigit() or int(value) < minimum or (maximum and int(value) > maximum):
        bound = f"between {minimum} and {maximum}" if maximum else f"of at least {minimum}"
        raise ParamError(f"'{name}' expects an integer {bound} (got '{value}').")
    return int(value)


def _weight(server: Server, name: str, value: str) -> Server:
    if not value.lstrip("-").isdigit() or not 0 <= int(value) <= 256:
        raise ParamError(f"weight of {_who(server)} is not within 0 and 256 ({value}).")
    return replace(server, weight=int(value))


def _count(minimum: int, change: Callable[[Server, int], Server]) -> Apply:
    def apply(server: Server, name: str, value: str) -> Server:
        if minimum == 1 and value.isdigit() and int(value) == 0:
            raise ParamError(f"'{name}' has to be > 0.")
        return change(server, _integer(name, value, minimum))
    return apply


def _interval(allow_zero: bool, change: Callable[[Server, float], Server]) -> Apply:
    def apply(server: Server, name: str, value: str) -> Server:
        try:
            seconds = parse_time(value)
        except UnitError as exc:
            if exc.overflow:
                raise ParamError(exc.describe(name)) from None
            raise ParamError(f"unexpected character '{exc.character}' in '{name}' argument of "
                             f"{_who(server)}.") from None
        if seconds == 0 and not allow_zero:
            raise ParamError(f"invalid value 0 for argument '{name}' of {_who(server)}.")
        return change(server, seconds)
    return apply


def _port(server: Server, name: str, value: str) -> Server:
    return replace(server, check_port=_integer(name, value, 1, 65535))


def _addr(server: Server, name: str, value: str) -> Server:
    """The check address: an IP address or, as HAProxy also takes, a host name."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not address.is_host_name(value):
            raise ParamError("'addr' expects <ipv4|ipv6> as argument.") from None
    return replace(server, check_addr=value)


def _cookie(server: Server, name: str, value: str) -> Server:
    return replace(server, cookie=value)


def _observe(server: Server, name: str, value: str) -> Server:
    if value == "none":
        return replace(server, observe=None)
    if value not in ("layer4", "layer7"):
        raise ParamError(f"'observe' expects one of 'none', 'layer4', 'layer7' but got '{value}'.")
    return replace(server, observe=Observe(value))


def _on_error(server: Server, name: str, value: str) -> Server:
    choices = {e.value: e for e in OnError}
    if value not in choices:
        raise ParamError(f"'on-error' expects one of 'fastinter', 'fail-check', 'sudden-death' "
                         f"or 'mark-down' but got '{value}'.")
    return replace(server, on_error=choices[value])


def _on_marked(expected: str, change: Callable[[Server], Server]) -> Apply:
    def apply(server: Server, name: str, value: str) -> Server:
        if value != expected:
            raise ParamError(f"'{name}' expects '{expected}' but got '{value}'.")
        return change(server)
    return apply


SERVER_PARAMS: dict[str, Param] = {
    "weight": Param(1, _weight),
    "maxconn": Param(1, _count(0, lambda s, v: replace(s, maxconn=v))),
    "maxqueue": Param(1, _count(0, lambda s, v: replace(s, maxqueue=v))),
    "backup": Param(0, _flag(lambda s: replace(s, backup=True))),
    "no-backup": Param(0, _flag(lambda s: replace(s, backup=False))),
    "disabled": Param(0, _flag(lambda s: replace(s, disabled=True))),
    "enabled": Param(0, _flag(lambda s: replace(s, disabled=False))),
    "check": Param(0, _flag(lambda s: replace(s, check=True))),
    "no-check": Param(0, _flag(lambda s: replace(s, check=False))),
    "cookie": Param(1, _cookie),
    "port": Param(1, _port),
    "addr": Param(1, _addr),
    "inter": Param(1, _interval(False, lambda s, v: replace(s, inter=v))),
    "fastinter": Param(1, _interval(False, lambda s, v: replace(s, fastinter=v))),
    "downinter": Param(1, _interval(False, lambda s, v: replace(s, downinter=v))),
    "slowstart": Param(1, _interval(True, lambda s, v: replace(s, slowstart=v))),
    "rise": Param(1, _count(1, lambda s, v: replace(s, rise=v))),
    "fall": Param(1, _count(1, lambda s, v: replace(s, fall=v))),
    "error-limit": Param(1, _count(1, lambda s, v: replace(s, error_limit=v))),
    "observe": Param(1, _observe),
    "on-error": Param(1, _on_error),
    "on-marked-down": Param(1, _on_marked(
        "shutdown-sessions", lambda s: replace(s, on_marked_down_shutdown_sessions=True))),
    "on-marked-up": Param(1, _on_marked(
        "shutdown-backup-sessions",
        lambda s: replace(s, on_marked_up_shutdown_backup_sessions=True))),
    "resolvers": Param(1, apply_resolvers),
    "resolve-prefer": Param(1, apply_resolve_prefer),
    "init-addr": Param(1, apply_init_addr),
    "resolve-opts": Param(1, apply_resolve_opts),
    "resolve-net": Param(1, apply_resolve_net),
    "send-proxy": Param(0, _flag(lambda s: replace(s, send_proxy=ProxyProtocol.V1))),
    "send-proxy-v2": Param(0, _flag(lambda s: replace(s, send_proxy=ProxyProtocol.V2))),
    "no-send-proxy": Param(0, _flag(lambda s: replace(s, send_proxy=None))),
    "no-send-proxy-v2": Param(0, _flag(lambda s: replace(s, send_proxy=None))),
    "check-send-proxy": Param(0, _flag(lambda s: replace(s, check_send_proxy=True))),
}
_IGNORED = {"id": 1}
_SILENT = {"no-agent-check": 0, "no-tfo": 0}
_REFUSED = frozenset({"send-proxy-v2-ssl", "send-proxy-v2-ssl-cn",
                      "proxy-v2-options", "track", "redir", "source", "usesrc", "agent-check",
                      "agent-port", "agent-inter", "agent-addr", "agent-send", "minconn",
                      "namespace", "pool-max-conn", "pool-purge-delay", "pool-low-conn",
                      "max-reuse", "proto", "socks4", "tcp-ut", "ws",
                      "check-proto", "check-via-socks4", "tfo", "non-stick", "log-proto",
                      "shard", "set-proxy-v2-tlv-fmt", "hash-key", "guid"})


def parse_server(proxy: ProxyDraft, line: Line) -> None:
    if len(line.args) < 2:
        line.fail("'server' expects <name> and <addr>[:<port>] as arguments.")
    name = line.arg(0)
    bad = check_name("server", name)
    if bad:
        line.fail(bad)
    label = f"'server {proxy.name}/{name}'"
    _check_unique(proxy, line, name)
    host, port = _server_address(line, line.arg(1), label)
    template = dataclasses.replace(proxy.settings.default_server, name=name, host=host,
                                   port=port, location=line.location)
    server = finish_server(_apply_params(line, template, 2, label), line, label)
    proxy.rules.servers.append(server)


def parse_server_template(proxy: ProxyDraft, line: Line) -> None:
    """Rule 5."""
    if len(line.args) < 3:
        line.fail("'server-template' expects <prefix> <nb | range> <addr>[:<port>] as "
                  "arguments.")
    prefix, count = line.arg(0), line.arg(1)
    bad = check_name("server", prefix)
    if bad:
        line.fail(bad)
    first_text, dash, last_text = count.partition("-")
    if not first_text.isdigit() or (dash and not last_text.isdigit()):
        line.fail(f"'server-template' : Wrong server-template number or range arg '{count}' "
                  "(expects <nb> or <first>-<last>).")
    first, last = (int(first_text), int(last_text)) if dash else (1, int(first_text))
    if first < 1 or last < first:
        line.fail(f"'server-template' : Wrong server-template number or range arg '{count}'.")
    label = f"'server-template {proxy.name}/{prefix}'"
    host, port = _server_address(line, line.arg(2), label)
    for number in range(first, last + 1):
        _check_unique(proxy, line, f"{prefix}{number}")
    template = dataclasses.replace(proxy.settings.default_server, name=prefix, host=host,
                                   port=port, location=line.location)
    server = finish_server(_apply_params(line, template, 3, label), line, label)
    proxy.rules.servers.extend(dataclasses.replace(server, name=f"{prefix}{number}")
                               for number in range(first, last + 1))


def _check_unique(proxy: ProxyDraft, line: Line, name: str) -> None:
    previous = next((s for s in proxy.rules.servers if s.name == name), None)
    if previous is not None:
        line.fail(f"{proxy.label}, another server named '{name}' was already defined at line "
                  f"{previous.location.line}, please use distinct names.")


def _server_address(line: Line, text: str, label: str) -> tuple[str, int]:
    try:
        host, port = address.parse_server(address.expand(text, line.env))
    except address.AddressError as exc:
        line.fail(f"{label} : {exc}")
    if is_srv_record(host):
        line.fail(f"{label} : '{host}' is a DNS SRV record: geoproxy resolves names through "
                  "the system's resolver, which does not answer SRV queries; name the servers' "
                  "host and port instead.")
    return host, port


def parse_default_server(proxy: ProxyDraft, line: Line) -> None:
    proxy.settings.default_server = _apply_params(
        line, proxy.settings.default_server, 0, "'default-server'")


def _apply_params(line: Line, server: Server, index: int, label: str) -> Server:
    args = line.args
    while index < len(args):
        name = args[index]
        if is_server_tls_param(name):  # kw_ssl_server.py
            arity = SERVER_TLS_PARAMS.get(name, 0)
            if arity and index + 1 >= len(args):
                line.fail(f"{label} : '{name}' expects {_expected(name)} as argument.")
            server = server_param(server, line, name, args[index + 1] if arity else "", label)
            index += 1 + arity
            continue
        arity = _arity(line, name, label)
        if arity and index + 1 >= len(args):
            line.fail(f"{label} : '{name}' expects {_expected(name)} as argument.")
        value = args[index + 1] if arity else ""
        param = SERVER_PARAMS.get(name)
        if param is not None:
            try:
                server = param.apply(server, name, value)
            except (ParamError, ResolveParamError) as exc:
                line.fail(f"{label} : {exc}")
        elif name in _IGNORED:
            line.warn(f"{label} : '{name}' is ignored by geoproxy.")
        index += 1 + arity
    return server


def _arity(line: Line, name: str, label: str) -> int:
    if name in SERVER_PARAMS:
        return SERVER_PARAMS[name].arity
    if name in _IGNORED:
        return _IGNORED[name]
    if name in _SILENT:
        return 0
    if name in _REFUSED:
        line.fail(f"{label} : '{name}' is not supported by geoproxy.")
    line.fail(f"{label} : unknown keyword '{name}'{suggestion(name, SERVER_PARAMS)} "
              f"(geoproxy supports {quoted_list(SERVER_PARAMS)}).")


def _expected(name: str) -> str:
    return {"cookie": "<value>", "addr": "<ipv4|ipv6>", "port": "<port>",
            "observe": "'none', 'layer4' or 'layer7'"}.get(name, "a value")
