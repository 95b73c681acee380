"""``resolvers`` sections and the server parameters that name them: HAProxy's run-time DNS.

Rules (manual section 5.3, "Server IP address resolution using DNS"; HAProxy's resolvers.c):
1. A ``resolvers NAME`` section holds ``nameserver NAME ADDR:PORT`` lines, ``parse-resolv-conf``,
   ``hold STATUS PERIOD`` (valid, nx, timeout, refused, other, obsolete), ``resolve_retries N``,
   ``timeout resolve|retry T`` and ``accepted_payload_size N``, with HAProxy's defaults.
   A section named ``default`` exists even when the file has none (HAProxy 2.6 builds it from
   the system's resolver configuration).
2. ``server ... resolvers NAME`` re-resolves the server's FQDN at run time; ``resolve-prefer
   ipv4|ipv6`` chooses the family (HAProxy's default: ipv6, falling back to the other one),
   ``init-addr`` lists the start-up methods (``last``, ``libc``, ``none``, an IP address),
   ``resolve-opts allow-dup-ip|prevent-dup-ip|ignore-weight``, ``resolve-net NET,...``.
3. geoproxy resolves through the system's resolver (``getaddrinfo``: ``/etc/hosts`` and
   ``/etc/resolv.conf``); the ``nameserver`` lines are checked and kept, not dialled.
   SRV records (``_service._proto.name``) cannot be asked of it: refused by name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from geoproxy.config import address
from geoproxy.config.context import Line, quoted_list
from geoproxy.config.model import Location, ResolvePrefer, Resolvers, Server, ServerResolution
from geoproxy.config.units import UnitError, parse_time

HOLD_STATUSES = ("nx", "obsolete", "other", "refused", "timeout", "valid")
_INIT_METHODS = ("last", "libc", "none")
_RESOLVE_OPTS = ("allow-dup-ip", "prevent-dup-ip", "ignore-weight")
DEFAULT_SECTION = "default"
_DEFAULTS = Resolvers(DEFAULT_SECTION, Location("", 0))


@dataclass(slots=True)
class ResolversDraft:
    name: str
    location: Location
    nameservers: list[tuple[str, str, int]] = field(default_factory=list)
    parse_resolv_conf: bool = False
    hold: dict[str, float] = field(default_factory=lambda: dict(_DEFAULTS.hold))
    resolve_retries: int = 3
    timeout_resolve: float = 1.0
    timeout_retry: float = 1.0
    accepted_payload_size: int = 512

    def freeze(self) -> Resolvers:
        return Resolvers(
            self.name, self.location, tuple(self.nameservers), self.parse_resolv_conf,
            tuple(sorted(self.hold.items())), self.resolve_retries, self.timeout_resolve,
            self.timeout_retry, self.accepted_payload_size,
        )


def _nameserver(draft: ResolversDraft, line: Line) -> None:
    if len(line.args) < 2:
        line.fail("'nameserver' expects <name> and <addr>[:<port>] as arguments.")
    text = address.expand(line.arg(1), line.env)
    if text.startswith("tcp@"):
        text = text[4:]
    try:
        host, port = address.parse_server(text)
    except address.AddressError as exc:
        line.fail(f"'nameserver {line.arg(0)}' : {exc}")
    draft.nameservers.append((line.arg(0), host, port or 53))


def _hold(draft: ResolversDraft, line: Line) -> None:
    status = line.arg(0)
    if status not in HOLD_STATUSES:
        line.fail(f"'hold' expects one of {quoted_list(HOLD_STATUSES, 'or')} (got '{status}').")
    draft.hold[status] = _time(line, 1, f"hold {status}")


def _time(line: Line, index: int, shown: str) -> float:
    text = line.arg(index)
    if not text:
        line.fail(f"'{shown}' expects a time value.")
    try:
        return parse_time(text)
    except UnitError as exc:
        line.fail(exc.describe(shown))


def _resolve_retries(draft: ResolversDraft, line: Line) -> None:
    text = line.arg(0)
    if not text.isdigit() or int(text) < 1:
        line.fail("'resolve_retries' expects <nb> as argument, a number greater than 0.")
    draft.resolve_retries = int(text)


def _timeout(draft: ResolversDraft, line: Line) -> None:
    kind = line.arg(0)
    if kind not in ("resolve", "retry"):
        line.fail(f"'timeout' expects 'resolve' or 'retry' (got '{kind}').")
    seconds = _time(line, 1, f"timeout {kind}")
    if kind == "resolve":
        draft.timeout_resolve = seconds
    else:
        draft.timeout_retry = seconds


def _payload(draft: ResolversDraft, line: Line) -> None:
    text = line.arg(0)
    if not text.isdigit() or not 512 <= int(text) <= 65535:
        line.fail("'accepted_payload_size' expects a value between 512 and 65535.")
    draft.accepted_payload_size = int(text)


def _parse_resolv_conf(draft: ResolversDraft, line: Line) -> None:
    line.at_most(0)
    draft.parse_resolv_conf = True


RESOLVERS_KEYWORDS = {
    "nameserver": _nameserver,
    "hold": _hold,
    "resolve_retries": _resolve_retries,
    "timeout": _timeout,
    "accepted_payload_size": _payload,
    "parse-resolv-conf": _parse_resolv_conf,
}


def parse_resolvers_line(draft: ResolversDraft, line: Line) -> None:
    """One line inside a ``resolvers`` section."""
    handler = RESOLVERS_KEYWORDS.get(line.keyword)
    if handler is None:
        line.fail(f"unknown keyword '{line.keyword}' in 'resolvers' section (geoproxy supports: "
                  f"{', '.join(RESOLVERS_KEYWORDS)}).")
    handler(draft, line)


# -- server parameters --------------------------------------------------------------------------


class ResolveParamError(Exception):
    """A resolution parameter HAProxy refuses; the message omits the server prefix."""


def _resolution(server: Server) -> ServerResolution:
    return server.resolution or ServerResolution(resolvers=None)


def apply_resolvers(server: Server, name: str, value: str) -> Server:
    return dataclasses.replace(
        server, resolution=dataclasses.replace(_resolution(server), resolvers=value))


def apply_resolve_prefer(server: Server, name: str, value: str) -> Server:
    if value not in ("ipv4", "ipv6"):
        raise ResolveParamError("'resolve-prefer' expects either ipv4 or ipv6 as argument "
                                f"(got '{value}').")
    return dataclasses.replace(
        server, resolution=dataclasses.replace(_resolution(server), prefer=ResolvePrefer(value)))


def apply_init_addr(server: Server, name: str, value: str) -> Server:
    methods = tuple(value.split(","))
    for method in methods:
        if method in _INIT_METHODS:
            continue
        try:
            ipaddress.ip_address(method)
        except ValueError:
            raise ResolveParamError(f"'init-addr' : unknown init-addr method '{method}', "
                                    "supported methods are 'libc', 'last', 'none' (or an IP "
                                    "address).") from None
    return dataclasses.replace(
        server, resolution=dataclasses.replace(_resolution(server), init_addr=methods))


def apply_resolve_opts(server: Server, name: str, value: str) -> Server:
    allow = _resolution(server).allow_dup_ip
    for option in value.split(","):
        if option not in _RESOLVE_OPTS:
            raise ResolveParamError(f"'resolve-opts' : unknown option '{option}', expects "
                                    f"{quoted_list(_RESOLVE_OPTS, 'or')}.")
        if option != "ignore-weight":
            allow = option == "allow-dup-ip"
    return dataclasses.replace(
        server, resolution=dataclasses.replace(_resolution(server), allow_dup_ip=allow))


def apply_resolve_net(server: Server, name: str, value: str) -> Server:
    networks = []
    for text in value.split(","):
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ResolveParamError(f"'resolve-net' : '{text}' is not a network.") from None
    return dataclasses.replace(
        server, resolution=dataclasses.replace(_resolution(server), networks=tuple(networks)))


def is_srv_record(host: str) -> bool:
    """``_service._proto.name``: an SRV record, which carries ports and weights."""
    return host.startswith("_") and "._" in host
